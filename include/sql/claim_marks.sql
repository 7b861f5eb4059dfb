-- The claim's marks (claim_marks): for each status value it scans, the contact id its keyset resumes after (0:
-- from the start). A mark stands only while the ledger row it was taken from exists: a ledger emptied or reset
-- by hand makes the claim scan that value from the start again instead of skipping contacts (empty claim_marks
-- and claim_windows too when resetting a ledger by hand: a later claim of that very id would revive the mark).
SELECT s.status, coalesce(m.contact_id, 0) AS after_id
FROM unnest(%(scan_statuses)s::text[]) AS s(status)
LEFT JOIN claim_marks m
    ON m.campaign_id = %(campaign_id)s AND m.status = s.status
   AND EXISTS (
       SELECT 1 FROM dispatch_ledger l WHERE l.campaign_id = m.campaign_id AND l.contact_id = m.contact_id
   )
ORDER BY s.status;
