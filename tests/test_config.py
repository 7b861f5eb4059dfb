"""The campaign config file: defaults, validation messages that name file, campaign and field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genesys_dialer.config import CampaignConfig, load_campaigns, parse_campaigns
from genesys_dialer.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaigns.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_apply_and_entries_override(tmp_path):
    path = _write(tmp_path, """
        defaults:
          batch_size: 2000
          genesys_conn_id: genesys_eu
        campaigns:
          - key: renewals
            campaign_id: c-1
          - key: winback
            campaign_id: c-2
            batch_size: 300
            schedule: null
    """)
    renewals, winback = load_campaigns(path)
    assert (renewals.batch_size, renewals.genesys_conn_id, renewals.schedule) == (2000, "genesys_eu", "*/15 * * * *")
    assert (winback.batch_size, winback.schedule) == (300, None)
    assert renewals.dag_id == "genesys_predictive_renewals"
    assert (renewals.segment_size, renewals.contacts_per_request, renewals.pool) == (1000, 1000, "genesys_api")
    assert (renewals.fallback_answer_rate, renewals.history_days, renewals.abandon_rate_target) == (0.15, 7, 3.0)


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ({"key": "Bad Key", "campaign_id": "c"}, "key", "pattern"),
        ({"key": "k"}, "campaign_id", "required"),
        ({"key": "k", "campaign_id": "c", "batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"key": "k", "campaign_id": "c", "contacts_per_request": 1001}, "contacts_per_request", "1000"),
        ({"key": "k", "campaign_id": "c", "abandon_rate_target": 5}, "abandon_rate_target", "abandon cap"),
        ({"key": "k", "campaign_id": "c", "max_calls_per_agent_ceiling": 20}, "max_calls_per_agent_ceiling",
         "org cap"),
        ({"key": "k", "campaign_id": "c", "ratio_strategy": "magic"}, "ratio_strategy", "unknown strategy"),
        ({"key": "k", "campaign_id": "c", "batch_sise": 10}, "batch_sise", "Extra inputs"),
        ({"key": "k", "campaign_id": "c", "phone_region": "usa"}, "phone_region", "pattern"),
        ({"key": "k", "campaign_id": "c", "phone_region": "UK"}, "phone_region", "the United Kingdom is GB"),
        ({"key": "k", "campaign_id": "c", "phone_region": "XY"}, "phone_region", "not a region libphonenumber"),
        ({"key": "k", "campaign_id": "c", "suppression_values": []}, "suppression_values", "at least 1"),
        ({"key": "k", "campaign_id": "c", "callable_statuses": ["  "]}, "callable_statuses", "must not be empty"),
        ({"key": "k", "campaign_id": "c", "inactive_statuses": [" ACTIVE"]}, "(entry)", "'active'] are in both"),
        ({"key": "k", "campaign_id": "c", "require_consent_for_mobile": True}, "(entry)", "needs consent_column"),
        ({"key": "k", "campaign_id": "c", "postal_code_column": "zip"}, "(entry)", "needs list_postal_code_column"),
        ({"key": "k", "campaign_id": "c", "list_timezone_column": "phone"}, "(entry)", "different contact list"),
        ({"key": "k", "campaign_id": "c", "skip_alert_share": 0}, "skip_alert_share", "greater than 0"),
        ({"key": "k", "campaign_id": "c", "withdraw_ids_per_request": 5000}, "withdraw_ids_per_request", "1000"),
    ],
)
def test_a_bad_entry_names_file_campaign_and_field(entry, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse_campaigns({"campaigns": [{"key": "ok", "campaign_id": "c0"}, entry]}, source="conf.yaml")
    message = str(info.value)
    assert message.startswith("conf.yaml: campaign ")
    assert "(campaigns[1])" in message
    assert f"field '{field}'" in message
    assert fragment in message


def test_compliance_defaults_and_flag_values_compare_trimmed_and_case_insensitively():
    default = CampaignConfig(key="k", campaign_id="c")
    assert (default.suppression_values, default.callable_statuses, default.inactive_statuses) == (
        ("do_not_call",), ("active",), ("inactive", "closed"))
    assert (default.require_timezone, default.require_consent_for_mobile, default.dnc_list_id) == (None, False, None)
    custom = CampaignConfig(key="k", campaign_id="c", suppression_values=[" DO_NOT_CALL ", "Opted_Out"],
                            callable_statuses=["Open "], phone_region="GB")
    assert custom.suppression_values == ("do_not_call", "opted_out") and custom.callable_statuses == ("open",)


def test_too_many_segments_for_max_map_length_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="max_map_length"):
        parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "batch_size": 200_000, "segment_size": 10}]})
    # The limit is Airflow's setting, not a copy of its default.
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "50000")
    parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "batch_size": 200_000, "segment_size": 10}]})


def test_duplicate_keys_and_document_shape_errors():
    with pytest.raises(ConfigError, match=r"campaign 'k' \(campaigns\[1\]\): field 'key': duplicate"):
        parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "a"}, {"key": "k", "campaign_id": "b"}]})
    # Two DAGs feeding one Genesys campaign would share its ledger and re-send each other's claims.
    with pytest.raises(ConfigError, match=r"campaign 'k2' \(campaigns\[1\]\): field 'campaign_id': duplicate"):
        parse_campaigns({"campaigns": [{"key": "k1", "campaign_id": "a"}, {"key": "k2", "campaign_id": "a"}]})
    with pytest.raises(ConfigError, match="non-empty list"):
        parse_campaigns({"campaigns": []})
    with pytest.raises(ConfigError, match="unknown top-level"):
        parse_campaigns({"campaign": []})


def test_missing_and_unparsable_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_campaigns(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaigns(_write(tmp_path, "campaigns: [\n"))


def test_the_shipped_config_is_valid():
    campaigns = load_campaigns(REPO / "dags" / "campaigns.yaml")
    assert [c.key for c in campaigns] == ["demo_renewals"]
    assert isinstance(campaigns[0], CampaignConfig)


def test_a_malformed_config_is_the_dag_files_import_error(tmp_path):
    """Parsed in a fresh interpreter like the dag-processor does: the import error names the field."""
    bad = _write(tmp_path, """
        campaigns:
          - key: renewals
            campaign_id: c-1
            segment_size: -5
    """)
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "print(repr(list(bag.import_errors.values())))\n"
        "print(sorted(bag.dag_ids))\n"
    )
    import os

    env = {**os.environ, "GENESYS_DIALER_CONFIG": str(bad)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    errors, dag_ids = result.stdout.strip().splitlines()[-2:]
    assert str(bad) in errors and "renewals" in errors and "segment_size" in errors
    assert dag_ids == "[]"


def test_parsing_the_dag_file_touches_no_network_or_database(tmp_path):
    """DAG files are parsed every few seconds: building the DAGs must not connect anywhere."""
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network or database access at parse time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import runpy\n"
        f"ns = runpy.run_path({str(REPO / 'dags' / 'genesys_predictive.py')!r})\n"
        "print(sorted(k for k in ns if k.startswith('genesys_predictive_')))\n"
    )
    import os

    env = {**os.environ, "GENESYS_DIALER_CONFIG": str(REPO / "dags" / "campaigns.yaml")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['genesys_predictive_demo_renewals']"
