-- The 15-minute buckets of one campaign in the pacing window [window_end - history_days, window_end), newest first;
-- age_days is how long before window_end the bucket ended (0 for the last one).
SELECT
    extract(epoch FROM (%(window_end)s::timestamptz - interval_end)) / 86400.0 AS age_days,
    interval_start, interval_end, attempts, connects, abandons, talk_count, talk_seconds, talk_sq_seconds,
    acw_count, acw_seconds, handle_count, handle_seconds, idle_agents
FROM campaign_outcomes
WHERE campaign_id = %(campaign_id)s
  AND interval_start >= %(window_end)s::timestamptz - %(history_days)s * interval '1 day'
  AND interval_end   <= %(window_end)s::timestamptz
ORDER BY interval_start DESC;
