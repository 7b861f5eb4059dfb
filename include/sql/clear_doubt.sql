-- Read back absent after every request that carried them had settled: Genesys does not hold them and no such
-- request can still be applied. They are ordinary pending contacts again.
UPDATE dispatch_ledger
SET sending_at = NULL, updated_at = now()
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed');
