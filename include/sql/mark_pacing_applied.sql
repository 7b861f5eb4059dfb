UPDATE pacing_decisions SET applied = true WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s;
