-- After the claim is written (claim_batch.sql): each scanned status value's mark moves to the highest fresh
-- candidate of that value the claim kept (each one is now in the ledger: claimed, skipped with its reason, or
-- taken first by a concurrent claimant), but never past a contact of that value above the old mark that is not in
-- the ledger now (created after created_before, or committed after the claim's scan): the mark stays below it and
-- the next claim reads it again. greatest(): of two concurrent claimants, the further mark holds for both (each
-- one's range is in the ledger; a stale mark is replaced). Statuses in order, so concurrent claimants lock the rows in one order.
INSERT INTO claim_marks AS m (campaign_id, status, contact_id, marked_at)
SELECT %(campaign_id)s, k.status, a.contact_id, now()
FROM (
    SELECT status, max(id) AS top FROM claim_candidates WHERE source = 2 GROUP BY status
) AS k
JOIN unnest(%(mark_statuses)s::text[], %(mark_ids)s::bigint[]) AS prev(status, after_id) ON prev.status = k.status
LEFT JOIN LATERAL (
    -- The batch's own candidates are ruled out first (the temporary table's index), not flattened (OFFSET 0), so
    -- only the few others cost a ledger probe (the planner would probe the ledger for every id of the range).
    SELECT r.id
    FROM (
        SELECT c.id
        FROM contacts c
        WHERE genesys_dialer_norm(c.status) = k.status
          AND c.id > prev.after_id AND c.id < k.top
          AND NOT EXISTS (SELECT 1 FROM claim_candidates x WHERE x.id = c.id)  -- written by this claim
        OFFSET 0
    ) AS r
    WHERE NOT EXISTS (
        SELECT 1 FROM dispatch_ledger l WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = r.id
    )
    ORDER BY r.id
    LIMIT 1
) AS gap ON true
CROSS JOIN LATERAL (
    SELECT max(x.id) AS contact_id
    FROM claim_candidates x
    WHERE x.source = 2 AND x.status = k.status AND (gap.id IS NULL OR x.id < gap.id)
) AS a
WHERE a.contact_id IS NOT NULL
ORDER BY k.status
ON CONFLICT (campaign_id, status) DO UPDATE
SET contact_id = CASE
        WHEN EXISTS (
            SELECT 1 FROM dispatch_ledger l WHERE l.campaign_id = m.campaign_id AND l.contact_id = m.contact_id
        ) THEN greatest(m.contact_id, excluded.contact_id)
        ELSE excluded.contact_id  -- a mark whose ledger row is gone was not used (claim_marks.sql): replaced
    END,
    marked_at = excluded.marked_at;
