-- Why a contact may not be sent (NULL: it may), as one SQL expression (a template: compliance/eligibility.py
-- fills in opt_out_reason.sql and the configured contacts columns), over the aliases of opt_out_reason.sql.
-- Shared by the claim and the check right before sending. Opt-outs and suppression come first (coalesce
-- evaluates the rest only when there is none); then what the data lacks.
coalesce({opt_out_reason}, CASE
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
END)
