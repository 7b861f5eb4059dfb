-- The abandonRate this pipeline last wrote to the campaign (a live run whose PATCH went through), if any: a
-- campaign target equal to it is the pipeline's own, not an operator's tightening.
SELECT abandon_rate
FROM pacing_decisions
WHERE campaign_id = %(campaign_id)s AND applied AND NOT dry_run
ORDER BY decided_at DESC
LIMIT 1;
