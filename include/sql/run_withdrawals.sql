-- What one run withdrew, by reason.
SELECT withdraw_reason, count(*)
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND withdrawn_by_run = %(run_id)s
GROUP BY withdraw_reason
ORDER BY withdraw_reason;
