-- Dry runs: how many of the contacts in scope a withdrawal would remove from Genesys, by reason (a template, as
-- withdraw_candidates.sql).
SELECT r.reason, count(*)
FROM withdraw_scope s
JOIN dispatch_ledger l ON l.campaign_id = %(campaign_id)s AND l.contact_id = s.contact_id
LEFT JOIN contacts c ON c.id = l.contact_id
LEFT JOIN contact_phones p
    ON p.contact_id = l.contact_id AND p.region = %(phone_region)s AND p.source_updated_at = c.updated_at
CROSS JOIN LATERAL (SELECT coalesce(l.phone_e164, p.e164) AS number) AS x
CROSS JOIN LATERAL (SELECT {withdraw_reason} AS reason OFFSET 0) AS r  -- OFFSET 0: computed once, not per use
WHERE l.status <> 'withdrawn'
  AND r.reason IS NOT NULL
GROUP BY r.reason;
