-- The ledger's view of one run: contacts per status and skip reason, and how many of them are in doubt.
SELECT status, coalesce(skip_reason, '') AS skip_reason, count(*) AS contacts,
       count(*) FILTER (WHERE sending_at IS NOT NULL) AS in_doubt
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s
GROUP BY status, skip_reason
ORDER BY status, skip_reason;
