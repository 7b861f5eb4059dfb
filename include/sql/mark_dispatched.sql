-- Genesys holds the contacts: it answered 2xx for their request, or a read-back found them.
-- One primary-key probe per id of the typed list (bigint[]): see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = l.attempts + 1,
    last_error = NULL, sending_at = NULL
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = u.contact_id AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed');
