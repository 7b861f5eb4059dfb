-- Candidates of the claim (claim_candidates.sql) flagged stale: their number is not normalized for the region,
-- or was normalized from an older version of the row, or they are retried skips (re-queued by hand, perhaps after
-- a fix that did not move updated_at). They are normalized in the claim's transaction first. The flag was taken
-- with the candidates, so the others cost no probe here.
-- A row whose updated_at is infinite comes back with NULL there (Python holds no such time): normalize_stale
-- refuses it, naming the contact.
SELECT c.id, c.phone_number, CASE WHEN isfinite(c.updated_at) THEN c.updated_at END AS updated_at
FROM claim_candidates k
JOIN contacts c ON c.id = k.id
WHERE k.stale;
