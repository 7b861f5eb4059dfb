-- Dry runs: the phone numbers of the run's (rolled-back) claim, to validate and count them.
SELECT l.segment_index, c.phone_number
FROM dispatch_ledger l
JOIN contacts c ON c.id = l.contact_id
WHERE l.campaign_id = %(campaign_id)s AND l.run_id = %(run_id)s
ORDER BY l.contact_id;
