-- The candidates' temporary table: indexed by id (a candidate is there once; the claim's later statements probe
-- it, see claim_plan.sql) and analyzed, so the claim is planned for its real size.
CREATE UNIQUE INDEX claim_candidates_id_idx ON claim_candidates (id);
ANALYZE claim_candidates;
