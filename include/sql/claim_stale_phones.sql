-- Candidates of the claim (claim_candidates.sql) whose number is not normalized for the region, or was
-- normalized from an older version of the row, and every retried skip (re-queued by hand, perhaps after a fix
-- that did not move updated_at): they are normalized in the claim's transaction first.
SELECT c.id, c.phone_number, c.updated_at
FROM claim_candidates k
JOIN contacts c ON c.id = k.id
LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.region = %(phone_region)s
WHERE p.source_updated_at IS DISTINCT FROM c.updated_at OR k.source = 1;
