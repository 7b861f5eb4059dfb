-- Why a contact must not be called at all any more (NULL: nothing says so), as one SQL expression (a template:
-- compliance/eligibility.py fills in the configured contacts columns): the person opted out, is no longer in
-- the audience, or their number is suppressed. These are the reasons a delivered contact is withdrawn from
-- Genesys (compliance.reasons.WITHDRAWAL_REASONS), and the first checks of hold_reason.sql. Over the aliases
-- c (contacts; NULL when the row is gone), p (contact_phones of the campaign's region, NULL unless it is current
-- with the row) and x.number (the number checked: the current one, or for a delivered contact the one Genesys
-- holds).
CASE
    WHEN c.id IS NULL THEN 'contact_deleted'
    WHEN genesys_dialer_flag_key(c.suppression_status) = ANY(%(suppression_keys)s) THEN 'suppressed'
    WHEN genesys_dialer_norm(c.status) = ANY(%(inactive_statuses)s) THEN 'inactive'
    WHEN genesys_dialer_norm(c.status) <> ALL(%(callable_statuses)s) THEN 'unknown_status'
    WHEN EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = x.number) THEN 'dnc_number'
    WHEN EXISTS (
        SELECT 1
        FROM contact_phones o
        JOIN contacts oc ON oc.id = o.contact_id
        WHERE o.e164 = x.number AND o.contact_id <> c.id
          AND genesys_dialer_flag_key(oc.suppression_status) = ANY(%(suppression_keys)s)
    ) THEN 'suppressed_number'
    WHEN %(require_consent_for_mobile)s AND p.number_type = ANY(%(maybe_mobile_types)s)
         AND NOT genesys_dialer_norm({consent}::text) = ANY(%(consent_values)s) THEN 'no_consent'
END
