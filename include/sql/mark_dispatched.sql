-- Genesys holds the contacts: it answered 2xx for their request, or a read-back found them.
-- One primary-key probe per id of the typed list (bigint[]), then the row by its ctid: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = l.attempts + 1,
    last_error = NULL, sending_at = NULL
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (
    SELECT d.ctid AS row_ctid FROM dispatch_ledger AS d
    WHERE d.campaign_id = %(campaign_id)s AND d.contact_id = u.contact_id
    OFFSET 0
) AS k
WHERE l.ctid = k.row_ctid
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') THEN true ELSE false END;
