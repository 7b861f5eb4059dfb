-- One page of a segment's undelivered contacts with what is needed to send or skip them, in keyset order (a
-- template: compliance/eligibility.py fills in hold_reason.sql and the configured columns). Eligibility is
-- checked again here, in full: a contact may have opted out, or its number been suppressed, since the claim.
-- Only rows the try owns (fence) and that are not in doubt (sending_at) are returned: a contact that Genesys may
-- already hold is resolved by reading the list back, never by sending it again.
SELECT l.contact_id,
       l.genesys_contact_id,
       x.number                                       AS e164,
       {hold_reason}                                  AS reason,
       coalesce({contact_time_zone}, p.time_zone)     AS time_zone,
       nullif(btrim({postal_code}::text), '')         AS postal_code,
       l.phone_e164                                   AS claimed_e164
FROM dispatch_ledger l
LEFT JOIN contacts c ON c.id = l.contact_id
LEFT JOIN contact_phones p
    ON p.contact_id = l.contact_id AND p.region = %(phone_region)s AND p.source_updated_at = c.updated_at
CROSS JOIN LATERAL (SELECT p.e164 AS number) AS x
WHERE l.campaign_id = %(campaign_id)s
  AND l.run_id = %(run_id)s
  AND l.segment_index = %(segment_index)s
  AND l.fence = %(fence)s
  AND l.status IN ('claimed', 'failed')
  AND l.sending_at IS NULL
  AND l.contact_id > %(after_contact_id)s
ORDER BY l.contact_id
LIMIT %(page_size)s;
