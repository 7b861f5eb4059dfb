-- Live answers (nOutboundConnected, Genesys' compliance denominator) and abandons of one campaign over the two
-- compliance windows ending at window_end (24 h Ofcom, 30 days FCC), with how many of their buckets are stored.
SELECT
    count(*) FILTER (WHERE interval_start >= %(window_end)s::timestamptz - interval '24 hours') AS buckets_24h,
    coalesce(sum(connects) FILTER (WHERE interval_start >= %(window_end)s::timestamptz - interval '24 hours'), 0)
        AS connects_24h,
    coalesce(sum(abandons) FILTER (WHERE interval_start >= %(window_end)s::timestamptz - interval '24 hours'), 0)
        AS abandons_24h,
    count(*) AS buckets_30d,
    coalesce(sum(connects), 0) AS connects_30d,
    coalesce(sum(abandons), 0) AS abandons_30d
FROM campaign_outcomes
WHERE campaign_id = %(campaign_id)s
  AND interval_start >= %(window_end)s::timestamptz - interval '30 days'
  AND interval_end   <= %(window_end)s::timestamptz;
