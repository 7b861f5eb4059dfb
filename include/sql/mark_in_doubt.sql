-- The request's outcome is unknown (timeout, dropped connection): pending, and sending_at stays set, so no
-- one sends these contacts again before the contact list is read back.
UPDATE dispatch_ledger
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = attempts + 1
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed') AND sending_at IS NOT NULL;
