-- Genesys answered that it did not apply the request (or nothing was sent): the contacts are certainly not
-- sent, stay claimed by the run, and a retry of the task or a later run sends them.
-- One primary-key probe per id of the typed list (bigint[]); written so no other plan exists: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = l.attempts + 1, sending_at = NULL
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (SELECT %(campaign_id)s::text AS campaign_id, u.contact_id OFFSET 0) AS k
WHERE l.campaign_id = k.campaign_id AND l.contact_id = k.contact_id AND l.fence = %(fence)s
  AND CASE l.status WHEN 'claimed' THEN true WHEN 'failed' THEN true ELSE false END;
