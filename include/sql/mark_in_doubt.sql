-- The request's outcome is unknown (timeout, dropped connection): pending, and sending_at stays set, so no
-- one sends these contacts again before the contact list is read back.
-- One primary-key probe per id of the typed list (bigint[]), then the row by its ctid: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = l.attempts + 1
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (
    SELECT d.ctid AS row_ctid FROM dispatch_ledger AS d
    WHERE d.campaign_id = %(campaign_id)s AND d.contact_id = u.contact_id
    OFFSET 0
) AS k
WHERE l.ctid = k.row_ctid
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') AND l.sending_at IS NOT NULL THEN true ELSE false END;
