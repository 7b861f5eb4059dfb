-- The next page of the contacts in scope (withdraw_scope.sql: may be in Genesys, may have changed) that are no
-- longer eligible, in keyset order (a template: compliance/eligibility.py fills in withdraw_reason.sql): an
-- opt-out reason, checked for the number Genesys holds (the one the ledger recorded), or a delivered contact
-- whose number changed. A DELETE of a contact Genesys does not hold changes nothing.
SELECT l.contact_id, l.genesys_contact_id, x.number, r.reason
FROM withdraw_scope s
JOIN dispatch_ledger l ON l.campaign_id = %(campaign_id)s AND l.contact_id = s.contact_id
LEFT JOIN contacts c ON c.id = l.contact_id
LEFT JOIN contact_phones p
    ON p.contact_id = l.contact_id AND p.region = %(phone_region)s AND p.source_updated_at = c.updated_at
CROSS JOIN LATERAL (SELECT coalesce(l.phone_e164, p.e164) AS number) AS x
CROSS JOIN LATERAL (SELECT {withdraw_reason} AS reason OFFSET 0) AS r  -- OFFSET 0: computed once, not per use
WHERE l.status <> 'withdrawn'
  AND s.contact_id > %(after_contact_id)s
  AND r.reason IS NOT NULL
ORDER BY s.contact_id
LIMIT %(page_size)s;
