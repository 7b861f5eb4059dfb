-- The claim's candidates after adoption (adopt_claims.sql), kept in a temporary table for the rest of the claim's
-- transaction: skips to retry because their contact changed or they were re-queued (source 1), then fresh
-- contacts never claimed for the campaign (2), at most %(limit)s (what adoption left of batch_size) in (source,
-- id) order, each with whether its number must be normalized first (stale). claim_batch.sql classifies and writes
-- them; claim_marks_advance.sql moves the marks.
--
-- Fresh contacts are scanned per status value in keyset (id) order (contacts_norm_status_id_idx): every callable
-- value and every value the config does not know (held back as unknown_status, so the report can name them),
-- never an inactive one. Each value's scan starts after its high-water mark (claim_marks.sql), so a claim reads
-- what it takes, not what the campaign claimed before (10M ledger rows cost nothing). Why no eligible contact is
-- skipped (every one arrives exactly once):
-- * a mark only moves past ids this claim wrote to the ledger, and never past a contact of that value which is
--   not in the ledger when the marks are advanced (claim_marks_advance.sql): one created after
--   %(created_before)s, or committed since the scan, stops the mark below it, and the next claim reads it again;
-- * what a mark cannot see is in the window (claim_window.sql): a contact below a mark whose status became
--   callable (its updated_at moved), or committed late (within the look-back), and a skip whose contact changed;
-- * the ledger's primary key and ON CONFLICT DO NOTHING (claim_batch.sql) make a contact found twice (by the scan
--   and the window, or by two claimants) a single claim.
-- Retryable skips: those re-queued by hand (dispatch_ledger_requeued_idx), those whose contact changed (the
-- window), and, until a claim has retried every one that changed before the first window (skips_caught_up),
-- every skip of the campaign (dispatch_ledger_skipped_idx, the claim before marks existed).
CREATE TEMPORARY TABLE claim_candidates ON COMMIT DROP AS
WITH retry AS (
    SELECT r.id
    FROM (
        (
            SELECT l.contact_id AS id
            FROM dispatch_ledger l
            JOIN contacts c ON c.id = l.contact_id
            WHERE l.campaign_id = %(campaign_id)s
              AND l.status = 'skipped' AND l.requeued_at IS NOT NULL AND l.requeued_at > l.updated_at
              AND l.skip_reason = ANY(%(retry_reasons)s)
              AND c.created_at < %(created_before)s
            ORDER BY l.contact_id
            LIMIT %(limit)s
        )
        UNION
        (
            SELECT l.contact_id
            FROM dispatch_ledger l
            JOIN contacts c ON c.id = l.contact_id
            WHERE NOT %(skips_caught_up)s
              AND l.campaign_id = %(campaign_id)s
              AND l.status = 'skipped'
              AND l.skip_reason = ANY(%(retry_reasons)s)
              AND (c.updated_at > l.updated_at OR l.requeued_at > l.updated_at)
              AND c.created_at < %(created_before)s
            ORDER BY l.contact_id
            LIMIT %(limit)s
        )
        UNION
        SELECT w.id FROM claim_window w WHERE w.in_ledger AND w.in_time
    ) AS r
    ORDER BY r.id
    LIMIT %(limit)s
),
fresh AS (
    -- A contact found by both paths is taken once, as the keyset found it (DISTINCT ON, keyset first).
    SELECT DISTINCT ON (f.id) f.id, f.status, f.updated_at
    FROM (
        SELECT s.id, m.status, s.updated_at, 0 AS path
        FROM unnest(%(mark_statuses)s::text[], %(mark_ids)s::bigint[]) AS m(status, after_id)
        CROSS JOIN LATERAL (
            SELECT c.id, c.updated_at
            FROM contacts c
            WHERE genesys_dialer_norm(c.status) = m.status
              AND c.id > m.after_id
              AND c.created_at < %(created_before)s
              -- Above the campaign's highest ledger id (window_top, read under the claim's lock) no contact can
              -- be in the ledger: no probe. One a concurrent claimant wrote since is left to it by ON CONFLICT.
              AND (
                  c.id > %(window_top)s
                  OR NOT EXISTS (
                      SELECT 1 FROM dispatch_ledger l
                      WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
                  )
              )
            ORDER BY c.id
            LIMIT %(limit)s
        ) AS s
        UNION ALL
        SELECT w.id, w.status, w.updated_at, 1 FROM claim_window w WHERE NOT w.in_ledger AND w.in_time
    ) AS f
    ORDER BY f.id, f.path
    LIMIT %(limit)s
)
-- stale: the candidate's number is not normalized for the region from the row version the claim read (or it is
-- a retried skip, re-queued perhaps after a fix that did not move updated_at): claim_stale_phones.sql normalizes
-- these first. A row changed after this statement is held back as phone_not_normalized (retried when it changes).
SELECT id, source, status, stale
FROM (
    SELECT id, 1 AS source, NULL::text AS status, true AS stale FROM retry
    UNION ALL
    SELECT f.id, 2, f.status,
           NOT EXISTS (
               SELECT 1 FROM contact_phones p
               WHERE p.contact_id = f.id AND p.region = %(phone_region)s AND p.source_updated_at = f.updated_at
           )
    FROM fresh f
) AS candidates
ORDER BY source, id
LIMIT %(limit)s;
