-- Why a contact may not be sent (NULL: it may), as one SQL expression (a template: compliance/eligibility.py
-- fills in the configured contacts columns). Over the aliases c (contacts; NULL when the row is gone),
-- p (contact_phones of the campaign's region, NULL unless it is current with the row) and x.number (the
-- number checked against suppression: the current one, or for a delivered contact the one Genesys holds).
-- Shared by the claim, the check right before sending and the withdrawal of delivered contacts. Suppression
-- comes first, so a delivered contact is withdrawn for it even when its number also became unparsable.
CASE
    WHEN c.id IS NULL THEN 'contact_deleted'
    WHEN genesys_dialer_norm(c.suppression_status) = ANY(%(suppression_values)s) THEN 'suppressed'
    WHEN genesys_dialer_norm(c.status) = ANY(%(inactive_statuses)s) THEN 'inactive'
    WHEN genesys_dialer_norm(c.status) <> ALL(%(callable_statuses)s) THEN 'unknown_status'
    WHEN EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = x.number) THEN 'dnc_number'
    WHEN EXISTS (
        SELECT 1
        FROM contact_phones o
        JOIN contacts oc ON oc.id = o.contact_id
        WHERE o.e164 = x.number AND o.contact_id <> c.id
          AND genesys_dialer_norm(oc.suppression_status) = ANY(%(suppression_values)s)
    ) THEN 'suppressed_number'
    WHEN %(require_consent_for_mobile)s AND p.number_type = ANY(%(maybe_mobile_types)s)
         AND NOT genesys_dialer_norm({consent}::text) = ANY(%(consent_values)s) THEN 'no_consent'
    WHEN p.contact_id IS NULL THEN 'phone_not_normalized'
    WHEN p.problem IS NOT NULL THEN p.problem
    WHEN EXISTS (
        SELECT 1
        FROM dispatch_ledger o
        WHERE o.campaign_id = %(campaign_id)s AND o.phone_e164 = p.e164 AND o.contact_id <> c.id
          AND o.status IN ('claimed', 'failed', 'dispatched')
    ) THEN 'duplicate_number'
    WHEN coalesce(%(require_timezone)s::boolean, p.number_region IN ('US', 'CA'))
         AND {contact_time_zone} IS NULL AND p.time_zone IS NULL
         AND nullif(btrim({postal_code}::text), '') IS NULL THEN 'unknown_timezone'
END
