-- Claim the next batch for one run, in one statement, inside the transaction that holds the campaign's
-- advisory lock (see lock_campaign.sql). First adopt undelivered claims of earlier runs whose lease has
-- expired (a run that failed and was never cleared must not lose them), then take fresh eligible contacts
-- in keyset (id) order. The ledger's primary key makes a double claim impossible even without the lock.
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
fresh AS (
    SELECT c.id, 1 AS source
    FROM contacts c
    WHERE c.status = 'active'
      AND c.suppression_status <> 'do_not_call'
      AND c.created_at < %(created_before)s
      AND NOT EXISTS (
          SELECT 1 FROM dispatch_ledger l
          WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
      )
    ORDER BY c.id
    LIMIT %(batch_size)s
),
picked AS (
    SELECT id, source, row_number() OVER (ORDER BY source, id) - 1 AS position
    FROM (SELECT * FROM adopted UNION ALL SELECT * FROM fresh) AS candidates
    ORDER BY source, id
    LIMIT %(batch_size)s
),
claimed AS (
    INSERT INTO dispatch_ledger AS l (
        campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index, status, claimed_at
    )
    SELECT %(campaign_id)s, p.id, %(contact_id_prefix)s || p.id::text, %(campaign_key)s, %(run_id)s,
           (p.position / %(segment_size)s)::int, 'claimed', now()
    FROM picked p
    ON CONFLICT (campaign_id, contact_id) DO UPDATE
        SET run_id = EXCLUDED.run_id,
            segment_index = EXCLUDED.segment_index,
            claimed_at = now(),
            updated_at = now()
        WHERE l.status IN ('claimed', 'failed')
    RETURNING (xmax <> 0) AS adopted  -- xmax is set on rows the upsert updated: the adopted ones
)
-- One row back, whatever the batch size: the task's memory does not grow with the batch.
SELECT count(*), count(*) FILTER (WHERE adopted) FROM claimed;
