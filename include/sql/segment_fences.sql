-- A segment's undelivered rows and the fences they carry (dispatch_ledger_run_segment_idx): a segment's first
-- try keeps the fence its claim or adoption gave them when they all carry one (take_segment in ledger/claims.py).
SELECT count(*), min(fence), max(fence)
FROM dispatch_ledger
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s AND segment_index = %(segment_index)s
  AND status IN ('claimed', 'failed');
