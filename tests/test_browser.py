"""The Airflow UI in a real browser (headless Chromium): a genesys_cloud connection made in the form, and Test;
the trigger form's dry_run choices.

Runs against the session's api-server (the ``airflow_stack`` fixture) and the Genesys emulator; skipped, saying
why, where Chromium or Playwright is missing (``.ci/run`` installs Chromium, so CI always runs it).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser import browser_page, skip_reason
from support import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, airflow

pytestmark = [
    pytest.mark.executor,
    pytest.mark.skipif(skip_reason() is not None, reason=f"browser test: {skip_reason()}"),
]

CONN_ID = "genesys_from_the_form"


def test_a_genesys_connection_made_in_the_ui_form_passes_its_test_button(emulator, airflow_stack):
    host, port = emulator.base_url.rsplit(":", 1)
    airflow("connections", "delete", CONN_ID, check=False)
    try:
        with browser_page(f"http://127.0.0.1:{airflow_stack['port']}") as page:
            page.goto("/connections")
            page.get_by_role("button", name="Add Connection").click()
            page.locator("input[name=connection_id]").fill(CONN_ID)
            page.get_by_role("combobox").click()
            page.keyboard.type("Genesys Cloud")
            page.get_by_role("option", name="Genesys Cloud").click()
            # The form is the provider info's: relabelled fields, the port shown, the tuning extras listed.
            page.get_by_text("Region or base URL").wait_for()
            assert page.get_by_text("Client Secret").is_visible()
            assert page.locator("input[name=schema]").count() == 0
            page.locator("input[name=host]").fill(host)
            page.locator("input[name=port]").fill(port)
            page.locator("input[name=login]").fill(EMULATOR_CLIENT_ID)
            page.locator("input[name=password]").fill(EMULATOR_CLIENT_SECRET)
            page.get_by_text("Extra Fields", exact=True).click()
            page.get_by_text("Timeout (s)").wait_for()
            with page.expect_response(lambda r: r.url.endswith("/api/v2/connections")) as created:
                page.get_by_role("button", name="Save").click()
            assert created.value.status == 201, created.value.text()

            row = page.get_by_role("row").filter(has_text=CONN_ID)
            test_button = row.get_by_role("button", name="Test Connection")
            with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as tested:
                test_button.click()
            result: dict[str, Any] = tested.value.json()
            assert tested.value.status == 200 and result == {
                "status": True, "message": "Token issued and outbound campaigns readable."}, result
            # What the person sees: the button's icon turns into a green "connected" one.
            page.wait_for_function(
                "el => el.querySelector('svg') && el.querySelector('svg').getAttribute('color') === 'green'",
                arg=test_button.element_handle(),
            )
        routes = [r["route"] for r in emulator.requests_log()]
        assert routes[-2:] == ["POST /oauth/token", "GET /api/v2/outbound/campaigns"]  # it really asked Genesys
    finally:
        airflow("connections", "delete", CONN_ID, check=False)


def test_the_trigger_form_offers_the_dry_run_choices_and_sends_the_one_picked(airflow_stack):
    """A person triggering a campaign DAG picks "dry" from a dropdown of named choices, and the run is asked for
    with that conf. The run itself is not created (the request is stopped in the browser): what the API does with
    the conf is test_runs'."""
    with browser_page(f"http://127.0.0.1:{airflow_stack['port']}") as page:
        page.goto("/dags/genesys_predictive_xrun")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Dry run", exact=True).wait_for()
        dialog.get_by_role("combobox").click()
        choices = [option.inner_text() for option in page.get_by_role("option").all()]
        assert [c.split(":")[0] for c in choices[:3]] == ["auto", "dry", "live"], choices
        assert choices[3:] == ["true (old spelling of dry)", "false (old spelling of live)",
                               "empty (old spelling of auto)"], choices
        page.get_by_role("option", name=re.compile("^dry:")).click()
        page.route("**/dagRuns", lambda route: route.abort())
        with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/dagRuns")) as asked:
            dialog.get_by_role("button", name="Trigger").click()
        sent = asked.value.post_data_json
    assert sent["conf"]["dry_run"] == "dry", sent
