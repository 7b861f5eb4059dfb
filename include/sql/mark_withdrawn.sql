-- Contacts removed from the contact list (and their numbers added to the DNC list): when, why, by which run,
-- and Genesys' contextId of each request.
UPDATE dispatch_ledger l
SET status = 'withdrawn', withdrawn_at = now(), withdraw_reason = u.reason, withdrawn_by_run = %(run_id)s,
    withdraw_context_id = %(context_id)s, withdraw_dnc_context_id = %(dnc_context_id)s, updated_at = now()
FROM unnest(%(contact_ids)s::bigint[], %(reasons)s::text[]) AS u(contact_id, reason)
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = u.contact_id AND l.status <> 'withdrawn';
