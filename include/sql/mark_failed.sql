-- The contacts stay claimed by the run: a retry of the task or a later run sends them.
UPDATE dispatch_ledger
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = attempts + 1
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND run_id = %(run_id)s
  AND status IN ('claimed', 'failed');
