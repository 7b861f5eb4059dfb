-- Claim fresh eligible contacts for one run: never in the ledger for this campaign, created before the run's
-- interval end, in keyset (id) order, at most %(limit)s, placed after the %(offset)s rows the run adopted
-- (adopt_claims.sql). A contact that a concurrent claimant inserted first is skipped (ON CONFLICT DO NOTHING):
-- a live claim is never taken over, with or without the campaign's advisory lock (lock_campaign.sql), which
-- only keeps concurrent batches full and contiguous.
WITH fresh AS (
    SELECT c.id
    FROM contacts c
    WHERE c.status = 'active'
      AND c.suppression_status <> 'do_not_call'
      AND c.created_at < %(created_before)s
      AND NOT EXISTS (
          SELECT 1 FROM dispatch_ledger l
          WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
      )
    ORDER BY c.id
    LIMIT %(limit)s
),
claimed AS (
    INSERT INTO dispatch_ledger (
        campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index, status, claimed_at,
        fence
    )
    SELECT %(campaign_id)s, f.id, %(contact_id_prefix)s || f.id::text, %(campaign_key)s, %(run_id)s,
           ((%(offset)s + row_number() OVER (ORDER BY f.id) - 1) / %(segment_size)s)::int, 'claimed', now(),
           %(fence)s
    FROM fresh f
    ON CONFLICT (campaign_id, contact_id) DO NOTHING
    RETURNING 1
)
-- One row back, whatever the batch size: the task's memory does not grow with the batch.
SELECT count(*) FROM claimed;
