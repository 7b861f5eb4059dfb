-- Read back absent after every request that carried them had settled: Genesys does not hold them and no such
-- request can still be applied. They are ordinary pending contacts again.
-- One primary-key probe per id of the typed list (bigint[]): see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET sending_at = NULL, updated_at = now()
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = u.contact_id AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed');
