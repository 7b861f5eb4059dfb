-- The next batch's candidates, kept in a temporary table for the rest of the claim's transaction (which holds
-- the campaign's advisory lock, see lock_campaign.sql): undelivered claims of earlier runs whose lease has
-- expired (source 0: a run that failed and was never cleared must not lose them), skips to retry because their
-- contact changed or they were re-queued (1), then fresh contacts never claimed for the campaign (2), at most
-- batch_size in (source, id) order. Fresh contacts are scanned per status value in keyset (id) order
-- (contacts_norm_status_id_idx): every callable value and every value the config does not know (held back as
-- unknown_status, so the report can name them), never an inactive one. claim_batch.sql classifies them.
CREATE TEMPORARY TABLE claim_candidates ON COMMIT DROP AS
WITH adopted AS (
    SELECT l.contact_id AS id, 0 AS source
    FROM dispatch_ledger l
    JOIN contacts c ON c.id = l.contact_id
    WHERE l.campaign_id = %(campaign_id)s
      AND c.created_at < %(created_before)s
      AND l.status IN ('claimed', 'failed')
      AND l.run_id <> %(run_id)s
      AND l.claimed_at < now() - %(lease_minutes)s * interval '1 minute'
    ORDER BY l.contact_id
    LIMIT %(batch_size)s
),
retry AS (
    SELECT l.contact_id AS id, 1 AS source
    FROM dispatch_ledger l
    JOIN contacts c ON c.id = l.contact_id
    WHERE l.campaign_id = %(campaign_id)s
      AND l.status = 'skipped'
      AND l.skip_reason = ANY(%(retry_reasons)s)
      AND (c.updated_at > l.updated_at OR l.requeued_at > l.updated_at)
      AND c.created_at < %(created_before)s
    ORDER BY l.contact_id
    LIMIT %(batch_size)s
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
        LIMIT %(batch_size)s
    ) AS f
    ORDER BY f.id
    LIMIT %(batch_size)s
)
SELECT id, source
FROM (SELECT * FROM adopted UNION ALL SELECT * FROM retry UNION ALL SELECT * FROM fresh) AS candidates
ORDER BY source, id
LIMIT %(batch_size)s;
