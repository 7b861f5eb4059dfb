-- Genesys holds the contacts: it answered 2xx for their request, or a read-back found them.
-- One primary-key probe per id of the typed list (bigint[]); written so no other plan exists: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = l.attempts + 1,
    last_error = NULL, sending_at = NULL
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (SELECT %(campaign_id)s::text AS campaign_id, u.contact_id OFFSET 0) AS k
WHERE l.campaign_id = k.campaign_id AND l.contact_id = k.contact_id AND l.fence = %(fence)s
  AND CASE l.status WHEN 'claimed' THEN true WHEN 'failed' THEN true ELSE false END;
