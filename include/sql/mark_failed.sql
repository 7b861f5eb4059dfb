-- Genesys answered that it did not apply the request (or nothing was sent): the contacts are certainly not
-- sent, stay claimed by the run, and a retry of the task or a later run sends them.
-- One primary-key probe per id of the typed list (bigint[]): see mark_plan.sql.
UPDATE dispatch_ledger AS l
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = l.attempts + 1, sending_at = NULL
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = u.contact_id AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed');
