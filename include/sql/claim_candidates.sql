-- The claim's candidates after adoption (adopt_claims.sql), kept in a temporary table for the rest of the claim's
-- transaction: skips to retry because their contact changed or they were re-queued (source 1), then fresh
-- contacts never claimed for the campaign (2), at most %(limit)s (what adoption left of batch_size) in (source,
-- id) order. Fresh contacts are scanned per status value in keyset (id) order (contacts_norm_status_id_idx):
-- every callable value and every value the config does not know (held back as unknown_status, so the report can
-- name them), never an inactive one. claim_batch.sql classifies and writes them.
CREATE TEMPORARY TABLE claim_candidates ON COMMIT DROP AS
WITH retry AS (
    SELECT l.contact_id AS id, 1 AS source
    FROM dispatch_ledger l
    JOIN contacts c ON c.id = l.contact_id
    WHERE l.campaign_id = %(campaign_id)s
      AND l.status = 'skipped'
      AND l.skip_reason = ANY(%(retry_reasons)s)
      AND (c.updated_at > l.updated_at OR l.requeued_at > l.updated_at)
      AND c.created_at < %(created_before)s
    ORDER BY l.contact_id
    LIMIT %(limit)s
),
fresh AS (
    SELECT f.id, 2 AS source
    FROM unnest(%(scan_statuses)s::text[]) AS s(status)
    CROSS JOIN LATERAL (
        SELECT c.id
        FROM contacts c
        WHERE genesys_dialer_norm(c.status) = s.status
          AND c.created_at < %(created_before)s
          AND NOT EXISTS (
              SELECT 1 FROM dispatch_ledger l
              WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
          )
        ORDER BY c.id
        LIMIT %(limit)s
    ) AS f
    ORDER BY f.id
    LIMIT %(limit)s
)
SELECT id, source
FROM (SELECT * FROM retry UNION ALL SELECT * FROM fresh) AS candidates
ORDER BY source, id
LIMIT %(limit)s;
