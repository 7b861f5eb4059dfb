"""``make screenshot``: the README's picture of the grid, with a run's labelled segments, by headless Chromium.

Without ``--url`` it starts the ``make ui`` stack, waits for the renewals run to finish, takes the picture and
stops the stack. With ``--url``/``--password``/``--path`` it photographs a stack that is already running.
Chromium is the machine's (``/usr/bin/chromium``, or ``--chromium``): playwright downloads no browser here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SEGMENT_LABEL = "-s000"  # the first segment's label ends so: <interval end>-s000


def capture(url: str, user: str, password: str, path: str, output: Path, *, chromium: str = CHROMIUM,
            size: tuple[int, int] = (1600, 720)) -> str:
    """Sign in, open ``path`` (a run's mapped create_segment page), wait for the segment labels, save a PNG.

    Returns the page's visible text, so a caller can check what the picture shows.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(f"{url}{path}", wait_until="load")
            page.get_by_label("Username").fill(user)  # the simple auth manager's sign-in page comes first
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector(f"text={SEGMENT_LABEL}", timeout=60_000)
            page.wait_for_load_state("networkidle")
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            return page.inner_text("body")
        finally:
            browser.close()


def _from_a_new_stack(output: Path, chromium: str) -> int:
    from genesys_devkit.local import RENEWALS
    from genesys_devkit.ui import USER, Stack

    stack = Stack(port=0)
    try:
        stack.start()
        run_id = stack.runs[RENEWALS.dag_id]
        deadline = time.monotonic() + 600
        while (state := stack.run_state(RENEWALS.dag_id, run_id)) not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} still {state} after 10 minutes")
            time.sleep(2)
        path = f"/dags/{RENEWALS.dag_id}/runs/{run_id}/tasks/create_segment/mapped"
        capture(stack.url, USER, stack.password, path, output, chromium=chromium)
    finally:
        stack.stop()
    print(f"Saved {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="genesys-dialer-screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/ui-grid.png"))
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--url", help="a running `make ui` (else one is started and stopped)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password")
    parser.add_argument("--path", help="the page to photograph, e.g. /dags/<dag_id>/runs/<run_id>/tasks/"
                        "create_segment/mapped (printed by make ui)")
    args = parser.parse_args(argv)
    if not args.url:
        return _from_a_new_stack(args.output, args.chromium)
    if not args.password or not args.path:
        parser.error("--url needs --password and --path")
    capture(args.url, args.user, args.password, args.path, args.output, chromium=args.chromium)
    print(f"Saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
