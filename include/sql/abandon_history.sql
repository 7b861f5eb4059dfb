-- Live answers and abandons of one campaign in dial_history over the compliance windows ending at window_end:
-- 30 days (FCC) and 24 hours (Ofcom).
SELECT
    count(*) FILTER (WHERE answered)  AS live_answers,
    count(*) FILTER (WHERE abandoned) AS abandons,
    count(*) FILTER (WHERE answered AND created_at >= %(window_end)s::timestamptz - interval '24 hours')
        AS live_answers_24h,
    count(*) FILTER (WHERE abandoned AND created_at >= %(window_end)s::timestamptz - interval '24 hours')
        AS abandons_24h
FROM dial_history
WHERE campaign_id = %(campaign_id)s
  AND created_at >= %(window_end)s::timestamptz - interval '30 days'
  AND created_at <  %(window_end)s::timestamptz;
