-- After the claim is written: the window's next start is a look-back (%(late_lookback_minutes)s, for rows
-- committed late with an older updated_at) before this claim began, but no later than the oldest contact of the
-- window the claim did not take (created after created_before, or beyond the batch): it is read again next time.
-- skips_caught_up turns true once a claim took every retryable skip it found (fewer than its limit).
INSERT INTO claim_windows AS w (campaign_id, since, skips_caught_up, updated_at)
SELECT %(campaign_id)s,
       least(
           now() - %(late_lookback_minutes)s * interval '1 minute',
           (
               SELECT min(x.updated_at)
               FROM claim_window x
               WHERE NOT x.in_time OR NOT EXISTS (SELECT 1 FROM claim_candidates k WHERE k.id = x.id)
           )
       ),
       %(skips_caught_up)s OR (SELECT count(*) FROM claim_candidates WHERE source = 1) < %(limit)s,
       now()
ON CONFLICT (campaign_id) DO UPDATE
SET since = excluded.since,
    skips_caught_up = w.skips_caught_up OR excluded.skips_caught_up,
    updated_at = excluded.updated_at;
