-- The next page of a campaign's contacts that may be in Genesys and are no longer eligible, in keyset order (a
-- template: compliance/eligibility.py fills in opt_out_reason.sql). "May be in Genesys": every contact that was in
-- a segment or attempted (a POST whose answer was lost may have stored it), not only the delivered ones; a
-- DELETE of a contact Genesys does not hold changes nothing. "No longer eligible": an opt-out reason
-- (opt_out_reason.sql), checked for the number Genesys holds (the one the ledger recorded).
SELECT l.contact_id, l.genesys_contact_id, x.number, r.reason
FROM dispatch_ledger l
LEFT JOIN contacts c ON c.id = l.contact_id
LEFT JOIN contact_phones p
    ON p.contact_id = l.contact_id AND p.region = %(phone_region)s AND p.source_updated_at = c.updated_at
CROSS JOIN LATERAL (SELECT coalesce(l.phone_e164, p.e164) AS number) AS x
CROSS JOIN LATERAL (SELECT {opt_out_reason} AS reason OFFSET 0) AS r  -- OFFSET 0: computed once, not per use
WHERE l.campaign_id = %(campaign_id)s
  AND l.status <> 'withdrawn' AND (l.segment_index >= 0 OR l.attempts > 0)
  AND l.contact_id > %(after_contact_id)s
  AND r.reason IS NOT NULL
ORDER BY l.contact_id
LIMIT %(page_size)s;
