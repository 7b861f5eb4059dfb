"""Why a contact is held back (``dispatch_ledger.skip_reason``) or withdrawn (``withdraw_reason``).

A bounded vocabulary: the values are metric labels too. Two kinds of skip, because they are handled differently
(and one reason, ``number_changed``, that only withdraws):

* suppression (the person asked not to be called, or their number is on a do-not-call list): final for the
  campaign. Never retried, never re-queued by ``genesys-dialer requeue``.
* data (the row is not usable yet): retried automatically once the contacts row changes (its ``updated_at``
  is newer than the skip), and re-queued by hand with ``genesys-dialer requeue --reason``.
"""

from __future__ import annotations

# Suppression: final.
SUPPRESSED = "suppressed"  # the contact's suppression_status is one of the campaign's suppression_values
DNC_NUMBER = "dnc_number"  # the number is in the internal do-not-call table (dnc_numbers)
SUPPRESSED_NUMBER = "suppressed_number"  # another contact with this number is suppressed
CONTACT_DELETED = "contact_deleted"  # the contacts row is gone

# Data: retried when the row changes, re-queued by hand.
INACTIVE = "inactive"  # status is one of inactive_statuses
UNKNOWN_STATUS = "unknown_status"  # status is neither callable nor inactive in the config
NO_CONSENT = "no_consent"  # a possibly-mobile number without consent, with require_consent_for_mobile
PHONE_NOT_NORMALIZED = "phone_not_normalized"  # the row changed while it was being sent; normalized next time
MISSING_PHONE = "missing_phone"
INVALID_PHONE = "invalid_phone"
DUPLICATE_NUMBER = "duplicate_number"  # the number is already claimed or delivered through another contact
UNKNOWN_TIMEZONE = "unknown_timezone"  # no time zone from the column, the number or a postal code

FINAL_REASONS = frozenset({SUPPRESSED, DNC_NUMBER, SUPPRESSED_NUMBER, CONTACT_DELETED})
DATA_REASONS = frozenset({
    INACTIVE, UNKNOWN_STATUS, NO_CONSENT, PHONE_NOT_NORMALIZED, MISSING_PHONE, INVALID_PHONE, DUPLICATE_NUMBER,
    UNKNOWN_TIMEZONE,
})
ALL_REASONS = FINAL_REASONS | DATA_REASONS

# Withdrawal only: a delivered (or in-doubt) contact's row now has another number, or none that can be dialed.
# Genesys would go on calling the number it holds, which the contact no longer gives (it may be someone else's
# now). Not an opt-out: that number is not added to the campaign's DNC list, and the contact is not sent again
# (a dialed contact is never queued again; withdraw_reason.sql).
NUMBER_CHANGED = "number_changed"
# A contact that may be in Genesys is withdrawn for the opt-outs (opt_out_reason.sql) and, once it may be held, for
# a changed number; not for a time zone or a duplicate: what Genesys holds is still what was checked.
OPT_OUT_REASONS = (CONTACT_DELETED, SUPPRESSED, DNC_NUMBER, SUPPRESSED_NUMBER, INACTIVE, UNKNOWN_STATUS, NO_CONSENT)
WITHDRAWAL_REASONS = (*OPT_OUT_REASONS, NUMBER_CHANGED)
