"""Deliver a segment's contacts exactly once: in-doubt marks before sending, read-back when an answer is lost.

A contacts POST queues its contacts for dialing (``doNotQueue=false``), so a POST that Genesys applied must not
be sent again: the contacts would be dialed twice. Every request is therefore preceded by a committed
``sending`` mark on its contacts (``dispatch_ledger.sending_at``, only on rows this try still owns by its
fence), and its outcome decides what happens next:

* 2xx: dispatched;
* an answer saying it was not applied (429/503 after the hook's retries, 500, 4xx, or the breaker refused to
  send): failed, i.e. not yet sent, for a retry or a later run;
* no answer (timeout, dropped connection, a killed task, a 2xx whose body was unreadable): the contacts stay in
  doubt. Before any of them is sent again the contact list is read back (``POST .../contacts/bulk``): present
  ones are dispatched without a second POST; absent ones are read again once every request that carried them
  has settled (``outcome_settle_seconds`` after it was sent), and only those still absent are sent again.

The same resolution runs at the start of every segment try, for contacts left in doubt by an earlier try that
was killed, or by the run whose expired claim this run adopted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genesys_dialer import metrics
from genesys_dialer.genesys.errors import GenesysApiError, GenesysOutcomeUnknownError, GenesysResponseError
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.ledger import claims

log = logging.getLogger(__name__)

# Why these query flags (see README, "Loading contacts"): a new batch joins the end of the dialing
# queue (priority=false) so it does not jump ahead of contacts already waiting; a re-sent contact keeps
# the dialer's own history of it (clearSystemData=false); and contacts are queued for dialing
# (doNotQueue=false), which is the point of the feed. A contact Genesys may already hold is never sent again
# before a read-back says it does not.
CONTACT_POST_FLAGS = {"priority": False, "clear_system_data": False, "do_not_queue": False}


@dataclass
class SegmentDelivery:
    """One segment try's sending, against the rows it owns by ``fence``."""

    conn: Any
    hook: GenesysHook
    campaign_id: str
    run_id: str
    segment_index: int
    label: str
    contact_list_id: str
    fence: int
    sleep: Callable[[float], None] = time.sleep
    sent: int = 0  # delivered by a POST that Genesys answered 2xx
    confirmed: int = 0  # found by a read-back after a lost answer: delivered without a second POST
    resent: int = 0  # in doubt, read back absent after settling: sent again
    superseded: int = 0  # rows this try no longer owns (adopted by another run, or a newer try)

    @property
    def delivered(self) -> int:
        return self.sent + self.confirmed

    def mark(self, sql_name: str, contact_ids: list[int], **extra: Any) -> int:
        return claims.mark(self.conn, sql_name, campaign_id=self.campaign_id, fence=self.fence,
                           contact_ids=contact_ids, **extra)

    # -- contacts in doubt -------------------------------------------------------------------------------
    def resolve_doubts(self) -> set[int]:
        """Read the list back for this try's contacts in doubt; return the ids that are plain pending again."""
        doubts = claims.in_doubt(
            self.conn, campaign_id=self.campaign_id, run_id=self.run_id, segment_index=self.segment_index,
            fence=self.fence, settle_seconds=self.hook.outcome_settle_seconds,
        )
        if not doubts:
            return set()
        by_genesys_id = {d.genesys_contact_id: d.contact_id for d in doubts}
        log.info("Segment %s: %d contacts in doubt (a request that carried them got no answer); reading the "
                 "contact list back before sending any of them again", self.label, len(doubts))
        absent = self._confirm_present(by_genesys_id)
        settle = max((d.settles_in for d in doubts if d.contact_id in absent.values()), default=0.0)
        if absent and settle > 0:
            log.info("Segment %s: %d contacts not in the list yet; waiting %.0f s until every request that carried "
                     "them has settled, then reading again", self.label, len(absent), settle)
            self.sleep(settle)
            absent = self._confirm_present(absent)
        if absent:
            # Not applied, and no request carrying them can still be: they are sent again, once.
            self.hook.record_lost_request("read back absent")
            self.resent += self.mark("clear_doubt", sorted(absent.values()))
            log.info("Segment %s: %d contacts are not in the list after their requests settled; they will be "
                     "sent again", self.label, len(absent))
        return set(absent.values())

    def _confirm_present(self, by_genesys_id: dict[str, int]) -> dict[str, int]:
        """Mark the ones the list holds dispatched (no second POST); return the rest."""
        present = self.hook.present_contact_ids(self.contact_list_id, by_genesys_id)
        found = sorted(by_genesys_id[g] for g in present if g in by_genesys_id)
        if found:
            marked = self.mark("mark_dispatched", found)
            self.confirmed += marked
            metrics.contacts(self.campaign_id, "dispatched", marked)
            if marked < len(found):
                self.superseded += len(found) - marked
            log.info("Segment %s: %d contacts in doubt are in the contact list: marked dispatched without "
                     "sending them again", self.label, len(found))
        return {g: cid for g, cid in by_genesys_id.items() if g not in present}

    # -- sending -----------------------------------------------------------------------------------------
    def send(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        """Upsert one request's worth of contacts exactly once, or raise with them failed or in doubt."""
        pending = batch
        for round_number in range(1, self.hook.max_attempts + 1):
            ids = [cid for cid, _ in pending]
            owned = claims.mark_sending(self.conn, campaign_id=self.campaign_id, fence=self.fence, contact_ids=ids)
            if len(owned) < len(ids):
                self._lost(len(ids) - len(owned))
                pending = [(cid, body) for cid, body in pending if cid in owned]
                ids = [cid for cid, _ in pending]
            if not pending:
                return
            try:
                stored = self.hook.add_contacts(self.contact_list_id, [b for _, b in pending], **CONTACT_POST_FLAGS)
            except GenesysOutcomeUnknownError as err:
                self.mark("mark_in_doubt", ids, error=str(err)[:500])
                if round_number == self.hook.max_attempts:
                    raise
                absent = self.resolve_doubts()
                pending = [(cid, body) for cid, body in pending if cid in absent]
                if not pending:
                    return
                continue
            except GenesysResponseError as err:
                # A 2xx whose body could not be read: applied, most likely. In doubt, never "failed".
                self.mark("mark_in_doubt", ids, error=str(err)[:500])
                raise
            except GenesysApiError as err:
                # Genesys answered that it did not apply it (or nothing was sent): certainly not sent.
                self.mark("mark_failed", ids, error=str(err)[:500])
                metrics.contacts(self.campaign_id, "failed", len(ids))
                raise
            if len(stored) != len(ids):
                log.warning("Genesys returned %d contacts for %d sent", len(stored), len(ids))
            marked = self.mark("mark_dispatched", ids)
            if marked != len(ids):
                # Adopted by another run while this request was in flight: delivered here; the adopter finds
                # them in doubt and reads them back instead of sending them again.
                self._lost(len(ids) - marked)
            # Counted as the ledger changes, so a segment that fails half-way still reports what it delivered.
            metrics.contacts(self.campaign_id, "dispatched", marked)
            self.sent += marked
            return

    def _lost(self, count: int) -> None:
        self.superseded += count
        log.warning("Segment %s: %d contacts are no longer this try's to send (another run adopted them, or a "
                    "newer try of this segment took over); leaving them to it", self.label, count)
