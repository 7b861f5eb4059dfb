UPDATE pacing_decisions SET applied = true, kept = %(kept)s::jsonb
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s;
