-- Genesys holds the contacts: it answered 2xx for their request, or a read-back found them.
UPDATE dispatch_ledger
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = attempts + 1,
    last_error = NULL, sending_at = NULL
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed');
