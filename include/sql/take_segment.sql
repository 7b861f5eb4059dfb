-- A segment try takes its undelivered rows: a new fence (an earlier try of the segment, if it still runs,
-- can mark and send nothing more) and a fresh heartbeat.
UPDATE dispatch_ledger
SET fence = %(fence)s, heartbeat_at = now(), updated_at = now()
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s AND segment_index = %(segment_index)s
  AND status IN ('claimed', 'failed');
