-- Claim the batch after adoption (adopt_claims.sql): classify the run's candidates (claim_candidates.sql) and
-- write each to the ledger, in one statement (a template: compliance/eligibility.py fills in hold_reason.sql). A
-- contact that may be sent is claimed into a segment, placed after the %(offset)s rows the run adopted; one that
-- may not is recorded as skipped with its reason (segment -1), so the ledger says why each contact was held
-- back. Within the batch a number is sent through one contact only: the first eligible one; the others are
-- duplicate_number (hold_reason.sql checks earlier claims and deliveries).
-- Claims hold by construction, with or without the campaign's advisory lock (lock_campaign.sql): a fresh
-- contact that a concurrent claimant inserted first is left to it (ON CONFLICT DO NOTHING; claims.py first runs
-- this without that clause in a savepoint, which a concurrent claimant's row makes fail whole), and a skip is taken
-- back only while it is still a retryable skip (the UPDATE re-checks that on the locked row version), so a
-- live claim is never taken over. Every row written carries the claim's new fence.
-- MATERIALIZED: the reason is computed once per candidate (inlined, the planner would repeat it for every use).
WITH classified AS MATERIALIZED (
    SELECT k.id, k.source, x.number AS e164, {hold_reason} AS reason
    FROM claim_candidates k
    LEFT JOIN contacts c ON c.id = k.id
    LEFT JOIN contact_phones p
        ON p.contact_id = k.id AND p.region = %(phone_region)s AND p.source_updated_at = c.updated_at
    CROSS JOIN LATERAL (SELECT p.e164 AS number) AS x
),
deduplicated AS (
    SELECT id, source, e164,
           CASE
               WHEN reason IS NULL
                    AND row_number() OVER (PARTITION BY e164 ORDER BY reason IS NOT NULL, source, id) > 1
               THEN 'duplicate_number'
               ELSE reason
           END AS reason
    FROM classified
),
positioned AS (
    SELECT id, source, e164, reason,
           %(offset)s + row_number() OVER (PARTITION BY reason IS NULL ORDER BY source, id) - 1 AS position
    FROM deduplicated
),
inserted AS (
    INSERT INTO dispatch_ledger AS l (
        campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index, status, skip_reason,
        phone_e164, claimed_at, fence
    )
    SELECT %(campaign_id)s, p.id, %(contact_id_prefix)s || p.id::text, %(campaign_key)s, %(run_id)s,
           CASE WHEN p.reason IS NULL THEN (p.position / %(segment_size)s)::int ELSE -1 END,
           CASE WHEN p.reason IS NULL THEN 'claimed' ELSE 'skipped' END, p.reason, p.e164, now(), %(fence)s
    FROM positioned p
    WHERE p.source = 2
    ON CONFLICT (campaign_id, contact_id) DO NOTHING
    RETURNING l.contact_id, l.status, l.skip_reason
),
retried AS (
    UPDATE dispatch_ledger AS l
    SET run_id = %(run_id)s,
        campaign_key = %(campaign_key)s,
        segment_index = CASE WHEN p.reason IS NULL THEN (p.position / %(segment_size)s)::int ELSE -1 END,
        status = CASE WHEN p.reason IS NULL THEN 'claimed' ELSE 'skipped' END,
        skip_reason = p.reason,
        phone_e164 = coalesce(p.e164, l.phone_e164),
        fence = %(fence)s,
        claimed_at = now(),
        heartbeat_at = NULL,
        updated_at = now()
    FROM positioned p
    WHERE p.source = 1
      AND l.campaign_id = %(campaign_id)s AND l.contact_id = p.id
      AND l.status = 'skipped' AND l.skip_reason = ANY(%(retry_reasons)s)
    RETURNING l.contact_id, l.status, l.skip_reason
)
-- A few rows back, whatever the batch size: the task's memory does not grow with the batch. Fresh contacts are
-- only inserted (source 2) and skips only retried (source 1).
SELECT w.source, w.status, coalesce(w.skip_reason, '') AS reason, count(*)
FROM (
    SELECT 2 AS source, status, skip_reason FROM inserted
    UNION ALL
    SELECT 1 AS source, status, skip_reason FROM retried
) AS w
GROUP BY 1, 2, 3;
