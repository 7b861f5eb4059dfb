-- The number each contact is about to be sent with, when it differs from the one it was claimed with (its
-- number changed since the claim): the ledger records what Genesys holds.
UPDATE dispatch_ledger l
SET phone_e164 = u.e164, updated_at = now()
FROM unnest(%(contact_ids)s::bigint[], %(numbers)s::text[]) AS u(contact_id, e164)
WHERE l.campaign_id = %(campaign_id)s AND l.fence = %(fence)s AND l.contact_id = u.contact_id
  AND l.phone_e164 IS DISTINCT FROM u.e164;
