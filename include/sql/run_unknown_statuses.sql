-- The status values a run held back as unknown_status, with their counts (the report names them).
SELECT genesys_dialer_norm(c.status) AS status, count(*)
FROM dispatch_ledger l
JOIN contacts c ON c.id = l.contact_id
WHERE l.campaign_id = %(campaign_id)s AND l.run_id = %(run_id)s
  AND l.status = 'skipped' AND l.skip_reason = 'unknown_status'
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT 20;
