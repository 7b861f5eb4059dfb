-- The ledger's view of one run: contacts per status and skip reason.
SELECT status, coalesce(skip_reason, '') AS skip_reason, count(*) AS contacts
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s
GROUP BY status, skip_reason
ORDER BY status, skip_reason;
