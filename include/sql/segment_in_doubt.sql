-- The segment try's rows in doubt (a request that carried them may have been applied), with the seconds left
-- until that request has settled (sending_at + settle_seconds, on the database's clock).
SELECT contact_id,
       genesys_contact_id,
       greatest(0, extract(epoch FROM sending_at + %(settle_seconds)s * interval '1 second' - now()))::float8
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s AND segment_index = %(segment_index)s
  AND fence = %(fence)s AND status IN ('claimed', 'failed') AND sending_at IS NOT NULL
ORDER BY contact_id;
