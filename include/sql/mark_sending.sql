-- Committed before a request is sent: its contacts are in doubt until its outcome is marked. Only rows this
-- try still owns (fence) are marked, and the caller sends exactly the rows returned. Renews the heartbeat.
-- One primary-key probe per id of the typed list (bigint[]), then the row by its ctid: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET sending_at = now(), heartbeat_at = now(), updated_at = now()
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (
    SELECT d.ctid AS row_ctid FROM dispatch_ledger AS d
    WHERE d.campaign_id = %(campaign_id)s AND d.contact_id = u.contact_id
    OFFSET 0
) AS k
WHERE l.ctid = k.row_ctid
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') AND l.sending_at IS NULL THEN true ELSE false END
RETURNING l.contact_id;
