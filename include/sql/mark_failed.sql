-- Genesys answered that it did not apply the request (or nothing was sent): the contacts are certainly not
-- sent, stay claimed by the run, and a retry of the task or a later run sends them.
UPDATE dispatch_ledger
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = attempts + 1, sending_at = NULL
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed');
