-- Committed before a request is sent: its contacts are in doubt until its outcome is marked. Only rows this
-- try still owns (fence) are marked, and the caller sends exactly the rows returned. Renews the heartbeat.
-- One primary-key probe per id of the typed list (bigint[]); written so no other plan exists: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET sending_at = now(), heartbeat_at = now(), updated_at = now()
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (SELECT %(campaign_id)s::text AS campaign_id, u.contact_id OFFSET 0) AS k
WHERE l.campaign_id = k.campaign_id AND l.contact_id = k.contact_id AND l.fence = %(fence)s
  AND CASE l.status WHEN 'claimed' THEN true WHEN 'failed' THEN true ELSE false END AND l.sending_at IS NULL
RETURNING l.contact_id;
