UPDATE dispatch_ledger
SET status = 'skipped', skip_reason = %(reason)s, updated_at = now()
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND run_id = %(run_id)s;
