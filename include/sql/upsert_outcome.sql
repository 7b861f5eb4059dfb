-- One 15-minute bucket of a campaign's outcomes; pulling it again replaces it (idempotent).
INSERT INTO campaign_outcomes (
    campaign_id, interval_start, interval_end, attempts, connects, abandons, talk_count, talk_seconds,
    talk_sq_seconds, acw_count, acw_seconds, handle_count, handle_seconds, idle_agents, as_of, synced_at
) VALUES (
    %(campaign_id)s, %(interval_start)s, %(interval_end)s, %(attempts)s, %(connects)s, %(abandons)s,
    %(talk_count)s, %(talk_seconds)s, %(talk_sq_seconds)s, %(acw_count)s, %(acw_seconds)s, %(handle_count)s,
    %(handle_seconds)s, %(idle_agents)s, %(as_of)s, now()
)
ON CONFLICT (campaign_id, interval_start) DO UPDATE SET
    interval_end = EXCLUDED.interval_end, attempts = EXCLUDED.attempts, connects = EXCLUDED.connects,
    abandons = EXCLUDED.abandons, talk_count = EXCLUDED.talk_count, talk_seconds = EXCLUDED.talk_seconds,
    talk_sq_seconds = EXCLUDED.talk_sq_seconds, acw_count = EXCLUDED.acw_count, acw_seconds = EXCLUDED.acw_seconds,
    handle_count = EXCLUDED.handle_count, handle_seconds = EXCLUDED.handle_seconds,
    idle_agents = coalesce(EXCLUDED.idle_agents, campaign_outcomes.idle_agents),
    as_of = GREATEST(campaign_outcomes.as_of, EXCLUDED.as_of), synced_at = now();
