"""Headless Chromium for tests and tools that look at the Airflow UI as a person would.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it on CI): Playwright's own
browser download cannot work on these machines. ``skip_reason()`` says why a browser test cannot run here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No sandbox (CI runs as root), no GPU, and nothing that phones home while a test runs.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    return path if path and os.access(path, os.X_OK) else None


def skip_reason() -> str | None:
    """Why a browser test cannot run on this machine, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does; or set $CHROMIUM)"
    return None


@contextmanager
def browser_page(base_url: str, *, width: int = 1440, height: int = 900) -> Iterator[Any]:
    """A Playwright page in headless Chromium whose relative URLs resolve against ``base_url``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
