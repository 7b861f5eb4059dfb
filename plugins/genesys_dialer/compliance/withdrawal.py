"""Withdrawing contacts that opted out after they were sent to Genesys.

Every run of a campaign first looks for contacts that may be in its contact list and are no longer eligible
(suppressed, inactive, deleted, their number now suppressed or in the DNC table, consent withdrawn), or were
delivered with a number they no longer have, and, a page at a time: adds the opted-out numbers to the
campaign's Genesys DNC list (when the config names one), removes the contacts from the contact list, checks
they are gone, and records the withdrawal in the ledger (when, why, which run, the contextId of each request).
The ledger is written last, so a task killed half-way loses nothing: the contacts it did not record are found
again by the next attempt, and both requests are idempotent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from genesys_dialer.compliance import reasons
from genesys_dialer.genesys.errors import GenesysTransientError
from genesys_dialer.queries import load_sql, run_sql

if TYPE_CHECKING:
    from genesys_dialer.compliance.eligibility import Eligibility
    from genesys_dialer.genesys.hook import GenesysHook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Withdrawal:
    contact_id: int
    genesys_contact_id: str
    number: str | None  # the number Genesys holds (None: never recorded; nothing to add to the DNC list)
    reason: str


@contextmanager
def scope(conn: Any, rules: Eligibility, *, lookback: timedelta) -> Iterator[Callable[[], None]]:
    """Put the contacts to check in the temporary table ``withdraw_scope``: those that may be in Genesys and
    may have changed since the last complete check (all of them the first time, or when the rules changed).

    Yields ``completed``: call it once every contact in scope was handled; the next check then starts from this
    one. A check that fails or is killed leaves the last one in place, so the next finds the same contacts.
    """
    params = {**rules.params(), "campaign_id": rules.campaign_id}
    with conn.cursor() as cur:
        cur.execute(load_sql("withdraw_check"), params)
        last_started, last_rules, started = cur.fetchone()
        full = last_started is None or last_rules != rules.fingerprint()
        cur.execute(load_sql("drop_withdraw_scope"))
        cur.execute(load_sql("withdraw_scope"), {**params, "since": "-infinity" if full else last_started - lookback})
    conn.commit()

    def completed() -> None:
        run_sql(conn, "record_withdraw_check", {
            "campaign_id": rules.campaign_id, "started_at": started, "rules": rules.fingerprint()})

    try:
        yield completed
    finally:
        conn.rollback()
        run_sql(conn, "drop_withdraw_scope", {})


def pages(conn: Any, rules: Eligibility, *, page_size: int) -> Iterator[list[Withdrawal]]:
    """Contacts of the scope to withdraw, a keyset page at a time (each page a fresh query: the caller commits
    between pages)."""
    query = rules.render("withdraw_candidates")
    after = 0
    while True:
        with conn.cursor() as cur:
            cur.execute(load_sql("no_jit"))
            cur.execute(query, {**rules.params(), "after_contact_id": after, "page_size": page_size})
            page = [Withdrawal(*row) for row in cur.fetchall()]
        conn.commit()
        if not page:
            return
        yield page
        after = page[-1].contact_id


def preview(conn: Any, rules: Eligibility, *, lookback: timedelta) -> dict[str, int]:
    """How many contacts a withdrawal would remove, by reason (dry runs: the last check stays the last)."""
    with scope(conn, rules, lookback=lookback), conn.cursor() as cur:
        cur.execute(load_sql("no_jit"))
        cur.execute(rules.render("withdraw_preview"), rules.params())
        counts = {reason: int(count) for reason, count in cur.fetchall()}
        conn.commit()
    return counts


def withdraw(
    conn: Any,
    hook: GenesysHook,
    rules: Eligibility,
    *,
    contact_list_id: str,
    dnc_list_id: str | None,
    run_id: str,
    page_size: int,
    lookback: timedelta,
    on_withdrawn: Callable[[str, int], None] = lambda reason, count: None,
) -> dict[str, int]:
    """Withdraw every contact that is no longer eligible; return how many by reason.

    A Genesys error propagates (the task fails and the next attempt finds what is left). Contacts still on the
    list after the DELETE (Genesys keeps contacts a campaign is using at that moment) are not recorded and end
    the call with a GenesysTransientError once the rest of the page is recorded.
    """
    withdrawn: Counter[str] = Counter()
    with scope(conn, rules, lookback=lookback) as completed:
        for page in pages(conn, rules, page_size=page_size):
            _withdraw_page(conn, hook, rules, page, contact_list_id=contact_list_id, dnc_list_id=dnc_list_id,
                           run_id=run_id, withdrawn=withdrawn, on_withdrawn=on_withdrawn)
        completed()
    return dict(withdrawn)


def _withdraw_page(
    conn: Any, hook: GenesysHook, rules: Eligibility, page: list[Withdrawal], *, contact_list_id: str,
    dnc_list_id: str | None, run_id: str, withdrawn: Counter[str], on_withdrawn: Callable[[str, int], None],
) -> None:
    """DNC list first, then the DELETE, a check that the contacts are gone, and the ledger last. A changed
    number is not an opt-out: it is removed with its contact, not added to the DNC list."""
    numbers = sorted({w.number for w in page if w.number and w.reason != reasons.NUMBER_CHANGED})
    dnc_context_id = None
    if dnc_list_id and numbers:
        dnc_context_id = hook.add_dnc_numbers(dnc_list_id, numbers)
    ids = [w.genesys_contact_id for w in page]
    context_id = hook.delete_contacts(contact_list_id, ids)
    remaining = {c.get("id") for c in hook.get_contacts(contact_list_id, ids)}
    done = [w for w in page if w.genesys_contact_id not in remaining]
    if done:
        run_sql(conn, "mark_withdrawn", {
            "campaign_id": rules.campaign_id, "run_id": run_id, "context_id": context_id,
            "dnc_context_id": dnc_context_id, "contact_ids": [w.contact_id for w in done],
            "reasons": [w.reason for w in done],
        })
        for reason, count in Counter(w.reason for w in done).items():
            withdrawn[reason] += count
            on_withdrawn(reason, count)
    log.info(
        "Withdrew %d contacts from contact list %s (DELETE contextId=%s%s)", len(done), contact_list_id,
        context_id, f"; numbers added to DNC list {dnc_list_id}, contextId={dnc_context_id}" if dnc_context_id
        else "",
    )
    if remaining:
        raise GenesysTransientError(
            f"{len(remaining)} of {len(ids)} contacts are still on contact list {contact_list_id} after the "
            "DELETE (Genesys deletes only contacts no campaign is using at that moment); they stay to be "
            "withdrawn by the next attempt",
            method="DELETE", endpoint="contacts_delete", context_id=context_id,
        )




def run_withdrawals(conn: Any, *, campaign_id: str, run_id: str) -> dict[str, int]:
    """What a run withdrew, by reason, from the ledger."""
    with conn.cursor() as cur:
        cur.execute(load_sql("run_withdrawals"), {"campaign_id": campaign_id, "run_id": run_id})
        counts = {reason: int(count) for reason, count in cur.fetchall()}
    conn.commit()
    return counts
