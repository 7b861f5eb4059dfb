-- Why a contact that may be in Genesys is withdrawn from it (NULL: it stays), as one SQL expression (a template:
-- compliance/eligibility.py fills in opt_out_reason.sql), over the aliases of withdraw_candidates.sql. First an
-- opt-out, checked for the number Genesys holds (x.number). Then, for a contact Genesys holds or may hold
-- (delivered, or in doubt: sending_at set), a number that is no longer the contact's: its row now has another
-- number, or none that can be dialed. Genesys would go on calling the old one, which may now belong to someone
-- else. (In doubt too: a read-back that finds it would mark it delivered after this check, which a later check,
-- looking only at rows changed since, would not see again.) An unsent claim is not withdrawn for this: its
-- segment sends the current number and records it. Nor is a row whose number is not yet normalized (p is NULL):
-- nothing says it changed, and the next check looks again.
coalesce({opt_out_reason}, CASE
    WHEN (l.status = 'dispatched' OR l.sending_at IS NOT NULL) AND l.phone_e164 IS NOT NULL
         AND p.contact_id IS NOT NULL AND p.e164 IS DISTINCT FROM l.phone_e164 THEN 'number_changed'
END)
