-- Contacts of a segment page whose number is not normalized from the row as it is now (it changed since the
-- claim): normalized before the page is checked and sent.
-- A row whose updated_at is infinite comes back with NULL there (Python holds no such time): normalize_stale
-- refuses it, naming the contact.
SELECT c.id, c.phone_number, CASE WHEN isfinite(c.updated_at) THEN c.updated_at END AS updated_at
FROM dispatch_ledger l
JOIN contacts c ON c.id = l.contact_id
LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.region = %(phone_region)s
WHERE l.campaign_id = %(campaign_id)s
  AND l.run_id = %(run_id)s
  AND l.segment_index = %(segment_index)s
  AND l.status IN ('claimed', 'failed')
  AND l.contact_id > %(after_contact_id)s
  AND l.contact_id <= %(through_contact_id)s
  AND p.source_updated_at IS DISTINCT FROM c.updated_at;
