INSERT INTO pacing_decisions (
    campaign_id, run_id, campaign_key, window_start, window_end, attempts, answers, answer_rate,
    answer_rate_lower, answer_rate_upper, pacing_answer_rate, prior_weight, estimate_source, strategy,
    dial_ratio, max_calls_per_agent, outbound_line_count, abandon_rate, details, dry_run, decided_at
) VALUES (
    %(campaign_id)s, %(run_id)s, %(campaign_key)s, %(window_start)s, %(window_end)s, %(attempts)s,
    %(answers)s, %(answer_rate)s, %(answer_rate_lower)s, %(answer_rate_upper)s, %(pacing_answer_rate)s,
    %(prior_weight)s, %(estimate_source)s, %(strategy)s, %(dial_ratio)s, %(max_calls_per_agent)s,
    %(outbound_line_count)s, %(abandon_rate)s, %(details)s::jsonb, %(dry_run)s, now()
)
ON CONFLICT (campaign_id, run_id) DO UPDATE SET
    window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end, attempts = EXCLUDED.attempts,
    answers = EXCLUDED.answers, answer_rate = EXCLUDED.answer_rate,
    answer_rate_lower = EXCLUDED.answer_rate_lower, answer_rate_upper = EXCLUDED.answer_rate_upper,
    pacing_answer_rate = EXCLUDED.pacing_answer_rate, prior_weight = EXCLUDED.prior_weight,
    estimate_source = EXCLUDED.estimate_source, strategy = EXCLUDED.strategy,
    dial_ratio = EXCLUDED.dial_ratio, max_calls_per_agent = EXCLUDED.max_calls_per_agent,
    outbound_line_count = EXCLUDED.outbound_line_count, abandon_rate = EXCLUDED.abandon_rate,
    details = EXCLUDED.details, dry_run = EXCLUDED.dry_run, decided_at = now();
