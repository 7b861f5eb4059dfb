-- Live answers and abandons of one campaign over the compliance window (30 days) ending at window_end.
SELECT
    count(*) FILTER (WHERE answered)  AS live_answers,
    count(*) FILTER (WHERE abandoned) AS abandons
FROM dial_history
WHERE campaign_id = %(campaign_id)s
  AND created_at >= %(window_end)s::timestamptz - interval '30 days'
  AND created_at <  %(window_end)s::timestamptz;
