-- Committed before a request is sent: its contacts are in doubt until its outcome is marked. Only rows this
-- try still owns (fence) are marked, and the caller sends exactly the rows returned. Renews the heartbeat.
-- One primary-key probe per id of the typed list (bigint[]): see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET sending_at = now(), heartbeat_at = now(), updated_at = now()
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = u.contact_id AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed') AND l.sending_at IS NULL
RETURNING l.contact_id;
