-- Candidates of the claim (claim_candidates.sql) flagged stale: their number is not normalized for the region,
-- or was normalized from an older version of the row, or they are retried skips (re-queued by hand, perhaps after
-- a fix that did not move updated_at). They are normalized in the claim's transaction first. The flag was taken
-- with the candidates, so the others cost no probe here.
SELECT c.id, c.phone_number, c.updated_at
FROM claim_candidates k
JOIN contacts c ON c.id = k.id
WHERE k.stale;
