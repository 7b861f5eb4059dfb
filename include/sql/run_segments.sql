-- A run's claim, segment by segment: what fetch_contact_batch returns as mapped-task descriptors.
SELECT segment_index,
       count(*)                                           AS contacts,
       min(contact_id)                                    AS first_contact_id,
       max(contact_id)                                    AS last_contact_id,
       count(*) FILTER (WHERE status IN ('claimed', 'failed')) AS pending
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s
GROUP BY segment_index
ORDER BY segment_index;
