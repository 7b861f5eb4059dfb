-- Read back absent after every request that carried them had settled: Genesys does not hold them and no such
-- request can still be applied. They are ordinary pending contacts again.
-- One primary-key probe per id of the typed list (bigint[]); written so no other plan exists: see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET sending_at = NULL, updated_at = now()
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (SELECT %(campaign_id)s::text AS campaign_id, u.contact_id OFFSET 0) AS k
WHERE l.campaign_id = k.campaign_id AND l.contact_id = k.contact_id AND l.fence = %(fence)s
  AND CASE l.status WHEN 'claimed' THEN true WHEN 'failed' THEN true ELSE false END;
