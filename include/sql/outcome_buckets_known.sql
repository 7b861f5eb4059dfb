-- The buckets of one campaign already stored in [window_start, window_end), with the as_of they were pulled at.
SELECT interval_start, as_of
FROM campaign_outcomes
WHERE campaign_id = %(campaign_id)s
  AND interval_start >= %(window_start)s
  AND interval_start <  %(window_end)s;
