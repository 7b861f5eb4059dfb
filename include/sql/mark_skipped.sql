UPDATE dispatch_ledger
SET status = 'skipped', skip_reason = %(reason)s, updated_at = now(), sending_at = NULL
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed');
