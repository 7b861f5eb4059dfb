-- A run's claim, segment by segment: what fetch_contact_batch returns as mapped-task descriptors. Segment -1
-- holds the contacts the claim held back (skipped with a reason); it is not sent.
SELECT segment_index,
       count(*)                                           AS contacts,
       count(*) FILTER (WHERE status IN ('claimed', 'failed')) AS pending
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s
GROUP BY segment_index
ORDER BY segment_index;
