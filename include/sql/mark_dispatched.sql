UPDATE dispatch_ledger
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = attempts + 1,
    last_error = NULL
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND run_id = %(run_id)s;
