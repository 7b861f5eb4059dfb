-- Serialise claims of one campaign (overlapping runs, backfills) for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended('genesys_dialer:' || %(campaign_id)s, 0));
