-- One normalizer per region at a time, for the rest of the chunk's transaction.
SELECT pg_advisory_xact_lock(hashtextextended('genesys_dialer:phones:' || %(region)s, 0));
