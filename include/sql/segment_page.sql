-- One page of a segment's undelivered contacts with what is needed to send or skip them, in keyset
-- order. Eligibility is checked again here: a contact may have been opted out since it was claimed. Only rows
-- the try owns (fence) and that are not in doubt (sending_at) are returned: a contact that Genesys may already
-- hold is resolved by reading the list back, never by sending it again.
SELECT l.contact_id,
       l.genesys_contact_id,
       c.phone_number,
       (c.id IS NOT NULL AND c.status = 'active' AND c.suppression_status <> 'do_not_call') AS eligible
FROM dispatch_ledger l
LEFT JOIN contacts c ON c.id = l.contact_id
WHERE l.campaign_id = %(campaign_id)s
  AND l.run_id = %(run_id)s
  AND l.segment_index = %(segment_index)s
  AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed')
  AND l.sending_at IS NULL
  AND l.contact_id > %(after_contact_id)s
ORDER BY l.contact_id
LIMIT %(page_size)s;
