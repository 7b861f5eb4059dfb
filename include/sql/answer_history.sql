-- Dial outcomes of one campaign per day over the window [window_end - history_days, window_end).
-- Anchored at the run's data_interval_end, so a backfill reproduces the history its interval saw.
-- age_days = 0 is the most recent day of the window.
SELECT
    floor(extract(epoch FROM (%(window_end)s::timestamptz - created_at)) / 86400)::int AS age_days,
    count(*)                                   AS attempts,
    count(*) FILTER (WHERE answered)           AS answers,
    count(*) FILTER (WHERE abandoned)          AS abandons
FROM dial_history
WHERE campaign_id = %(campaign_id)s
  AND created_at >= %(window_end)s::timestamptz - %(history_days)s * interval '1 day'
  AND created_at <  %(window_end)s::timestamptz
GROUP BY 1
ORDER BY 1;
