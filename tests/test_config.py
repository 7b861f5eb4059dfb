"""The campaign config file: defaults, validation messages that name file, campaign and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from genesys_dialer.config import CampaignConfig, load_campaigns, load_config, parse_campaigns
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
    assert (renewals.segment_size, renewals.contacts_per_request, renewals.pool) == ("auto", 1000, "genesys_api")
    assert renewals.segment_size_for(2000) == 2000 and renewals.segment_size_for(1_000_000) == 250_000
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
        ({"key": "k", "campaign_id": "c", "phone_region": " uk"}, "phone_region", "the United Kingdom is GB"),
        ({"key": "k", "campaign_id": "c", "phone_region": False}, "phone_region", "quote it: phone_region: 'NO'"),
        ({"key": "k", "campaign_id": "c", "phone_region": "XY"}, "phone_region", "not a region libphonenumber"),
        ({"key": "k", "campaign_id": "c", "suppression_values": []}, "suppression_values", "at least 1"),
        ({"key": "k", "campaign_id": "c", "suppression_values": ["do_not_call", " - "]}, "suppression_values",
         "needs a letter or digit"),
        ({"key": "k", "campaign_id": "c", "callable_statuses": ["  "]}, "callable_statuses", "must not be empty"),
        ({"key": "k", "campaign_id": "c", "inactive_statuses": [" ACTIVE"]}, "(entry)", "'active'] are in both"),
        ({"key": "k", "campaign_id": "c", "require_consent_for_mobile": True}, "(entry)", "needs consent_column"),
        ({"key": "k", "campaign_id": "c", "postal_code_column": "zip"}, "(entry)", "needs list_postal_code_column"),
        ({"key": "k", "campaign_id": "c", "list_timezone_column": "phone"}, "(entry)", "different contact list"),
        ({"key": "k", "campaign_id": "c", "skip_alert_share": 0}, "skip_alert_share", "greater than 0"),
        ({"key": "k", "campaign_id": "c", "withdraw_ids_per_request": 5000}, "withdraw_ids_per_request", "1000"),
        ({"key": "k", "campaign_id": "c", "schedule": "*/15 * * *"}, "schedule", "not a cron expression"),
        ({"key": "k", "campaign_id": "c", "schedule": "every 15 minutes"}, "schedule", "not a cron expression"),
        ({"key": "k", "campaign_id": "c", "schedule": "61 * * * *"}, "schedule", "out of range"),
        ({"key": "k", "campaign_id": "c", "catchup_runs": "yes"}, "catchup_runs", "'dry' or 'live'"),
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
    # A region code in lower case or padded is the same region (UK still is not one: see the errors above).
    assert [CampaignConfig(key="k", campaign_id="c", phone_region=r).phone_region for r in ("us", " gb ", "Ca")] == [
        "US", "GB", "CA"]


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


def test_good_schedules_pass_and_presets_resolve():
    for schedule in (None, "@once", "@continuous", "@hourly", "@daily", "@quarterly", "0 6 * * 1-5", "*/5 * * * *"):
        (campaign,) = parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "schedule": schedule}]})
        assert campaign.schedule == schedule


def test_a_duplicate_key_in_an_entry_is_named_with_its_line_and_the_other_entries_still_load(tmp_path):
    path = _write(tmp_path, """
        campaigns:
          - key: renewals
            campaign_id: c-1
          - key: winback
            campaign_id: c-2
            agents: 12
            campaign_id: c-1
          - key: upsell
            campaign_id: c-3
    """)
    config = load_config(path)
    assert [c.key for c in config.campaigns] == ["renewals", "upsell"]
    (bad,) = config.invalid
    assert (bad.index, bad.key, bad.dag_id) == (1, "winback", "genesys_predictive_winback")
    assert str(bad.error) == (
        f"{path}: campaign 'winback' (campaigns[1]): line 8: duplicate key 'campaign_id' (first at line 6); "
        "YAML would silently keep only the last value"
    )
    with pytest.raises(ConfigError, match="line 8: duplicate key 'campaign_id'"):
        load_campaigns(path)  # the strict loader (CLI, demo) refuses the file


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("defaults:\n  agents: 5\n  agents: 6\ncampaigns:\n  - {key: a, campaign_id: c}\n",
         "defaults: line 3: duplicate key 'agents' (first at line 2)"),
        ("campaigns:\n  - {key: a, campaign_id: c}\ncampaigns:\n  - {key: b, campaign_id: d}\n",
         "the top level: line 3: duplicate key 'campaigns' (first at line 1)"),
    ],
)
def test_a_duplicate_key_outside_the_entries_fails_the_whole_file(tmp_path, text, fragment):
    path = tmp_path / "campaigns.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {fragment}; YAML would silently keep only the last value"


def test_each_bad_entry_is_kept_apart_with_a_dag_id_of_its_own():
    config = load_config_from({"campaigns": [
        {"key": "good", "campaign_id": "c1"},
        {"key": "good", "campaign_id": "c2"},          # duplicate key: cannot take the good one's dag_id
        {"key": "Bad Key", "campaign_id": "c3"},       # unusable key
        "not a mapping",
        {"key": "late", "campaign_id": "c4", "schedule": "at noon"},
    ]})
    assert [c.key for c in config.campaigns] == ["good"]
    assert [(e.index, e.dag_id) for e in config.invalid] == [
        (1, "genesys_predictive_invalid_entry_1"), (2, "genesys_predictive_invalid_entry_2"),
        (3, "genesys_predictive_invalid_entry_3"), (4, "genesys_predictive_late"),
    ]
    assert "field 'key': duplicate of campaigns[0]" in str(config.invalid[0].error)
    assert "campaigns[3] must be a mapping" in str(config.invalid[2].error)
    assert "campaign 'late' (campaigns[4]): field 'schedule': 'at noon' is not a cron expression" in str(
        config.invalid[3].error)


def load_config_from(document):
    from genesys_dialer.config import parse_config

    return parse_config(document, source="conf.yaml")


def _dagbag(tmp_path: Path, config: Path) -> tuple[list[str], list[str], dict[str, tuple[str, str, list[str]]]]:
    """The DAG folder parsed in a fresh interpreter, as the dag-processor does: import errors, dag_ids, and each
    DAG's display name, description and task ids."""
    script = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors.values()), 'dags': {d.dag_id: [d.dag_display_name, "
        "d.description, sorted(d.task_ids)] for d in bag.dags.values()}}))\n"
    )
    import json
    import os

    env = {**os.environ, "GENESYS_DIALER_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed["errors"], sorted(parsed["dags"]), {k: tuple(v) for k, v in parsed["dags"].items()}


def test_one_bad_entry_leaves_the_other_dags_and_shows_as_a_config_error_dag(tmp_path):
    """Parsed like the dag-processor does: the good campaign's DAG loads; the bad entry is a DAG of its own
    whose name says CONFIG ERROR and whose description names file, campaign and field."""
    config = _write(tmp_path, """
        campaigns:
          - key: renewals
            campaign_id: c-1
          - key: winback
            campaign_id: c-2
            segment_size: -5
    """)
    errors, dag_ids, dags = _dagbag(tmp_path, config)
    assert errors == []
    assert dag_ids == ["genesys_predictive_renewals", "genesys_predictive_winback"]
    assert "create_segment" in dags["genesys_predictive_renewals"][2]
    name, description, tasks = dags["genesys_predictive_winback"]
    assert name == "CONFIG ERROR: winback"
    assert description.startswith(f"{config}: campaign 'winback' (campaigns[1]): field 'segment_size': ")
    assert tasks == ["config_error"]


def test_an_unreadable_file_is_the_dag_files_import_error(tmp_path):
    """Nothing in a file that is not YAML (or repeats a top-level key) can be trusted: no DAG loads."""
    config = _write(tmp_path, "campaigns: [\n")
    errors, dag_ids, _ = _dagbag(tmp_path, config)
    assert dag_ids == []
    assert len(errors) == 1 and str(config) in errors[0] and "not valid YAML" in errors[0]


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


def test_a_run_of_a_config_error_dag_fails_at_once_naming_file_campaign_and_field(airflow_db, capfd):
    """The session's config has an invalid entry ("broken"): its DAG's run fails at once, saying why."""
    from support import ALL_CAMPAIGNS, BROKEN_CAMPAIGN, CONFIG_PATH

    from genesys_dialer.dags.factory import campaign_dags

    dags = campaign_dags(REPO / "dags" / "genesys_predictive.py")
    assert "genesys_predictive_itest" in dags  # the valid campaigns are all there
    broken = dags["genesys_predictive_broken"]
    assert broken.dag_display_name == "CONFIG ERROR: broken" and broken.task_ids == ["config_error"]
    dag_run = broken.test()
    out, _ = capfd.readouterr()
    assert str(dag_run.state) == "failed"
    where = f"campaigns[{ALL_CAMPAIGNS.index(BROKEN_CAMPAIGN)}]"
    assert f"{CONFIG_PATH}: campaign 'broken' ({where}): field 'segment_size': Input should be greater than " \
           "or equal to 1" in out


def test_an_unchanged_file_is_read_from_the_cache_and_an_edit_is_seen(tmp_path, monkeypatch):
    """The dag-processor parses the file every 30 s: the second parse reads no YAML; any edit (even one that
    keeps size and mtime) is read again; a file that fails as a whole is not cached."""
    from genesys_dialer import config as config_module

    monkeypatch.setenv("GENESYS_DIALER_CACHE_DIR", str(tmp_path / "cache"))
    path = _write(tmp_path, """
        campaigns:
          - key: renewals
            campaign_id: c-1
          - key: winback
            campaign_id: c-2
            segment_size: -5
    """)
    first = load_config(path)
    assert [p.name for p in (tmp_path / "cache").iterdir()] and (tmp_path / "cache").stat().st_mode & 0o777 == 0o700

    def no_yaml(*args, **kwargs):
        raise AssertionError("the YAML was read again")

    with monkeypatch.context() as patched:
        patched.setattr(config_module, "read_yaml", no_yaml)
        second = load_config(path)
    assert second.campaigns == first.campaigns
    assert [(e.index, e.dag_id, str(e.error)) for e in second.invalid] == [
        (e.index, e.dag_id, str(e.error)) for e in first.invalid]
    assert "field 'segment_size'" in str(second.invalid[0].error)

    stat = path.stat()
    path.write_text(path.read_text().replace("segment_size: -5", "segment_size: 50"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = load_config(path)
    assert [c.key for c in edited.campaigns] == ["renewals", "winback"] and not edited.invalid

    path.write_text("campaigns: [\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config(path)


def test_the_cache_can_be_turned_off_and_is_not_used_in_a_folder_others_may_write(tmp_path, monkeypatch):
    path = _write(tmp_path, "campaigns:\n  - {key: a, campaign_id: c}\n")
    monkeypatch.setenv("GENESYS_DIALER_CACHE_DIR", "off")
    assert [c.key for c in load_config(path).campaigns] == ["a"]
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("GENESYS_DIALER_CACHE_DIR", str(shared))
    assert [c.key for c in load_config(path).campaigns] == ["a"]
    assert list(shared.iterdir()) == []  # it holds pickles: a folder anyone may write to is never read


def test_shards_split_the_campaigns_between_dag_files_each_dag_in_exactly_one(tmp_path, monkeypatch):
    from genesys_dialer.dags.factory import campaign_dags, shard_of

    entries = "".join(f"  - {{key: c{i}, campaign_id: id-{i}}}\n" for i in range(30))
    path = _write(tmp_path, "campaigns:\n" + entries + "  - {key: broken, campaign_id: x, segment_size: 0}\n")
    monkeypatch.setenv("GENESYS_DIALER_CONFIG", str(path))
    whole = campaign_dags(tmp_path / "dag.py")
    assert len(whole) == 31 and whole["genesys_predictive_broken"].task_ids == ["config_error"]
    shards = [campaign_dags(tmp_path / f"dag_{i}.py", shard=i, shards=4) for i in range(4)]
    ids = [dag_id for shard in shards for dag_id in shard]
    assert sorted(ids) == sorted(whole) and len(ids) == len(set(ids))
    assert all(len(shard) >= 3 for shard in shards)
    assert all(shard_of(dag_id, 4) == i for i, shard in enumerate(shards) for dag_id in shard)
    assert shard_of("genesys_predictive_c0", 4) == zlib.crc32(b"genesys_predictive_c0") % 4  # stable everywhere
    for bad in ({"shard": 4, "shards": 4}, {"shard": -1, "shards": 2}, {"shard": 0, "shards": 0}):
        with pytest.raises(ConfigError, match="need 0 <= shard < shards"):
            campaign_dags(tmp_path / "dag.py", **bad)


def test_sharded_dag_files_parse_like_the_dag_processor_does(tmp_path):
    """Two shard files in one DAGs folder: every DAG loads once, from one of them, with no import error."""
    folder = tmp_path / "dags"
    folder.mkdir()
    for i in range(2):
        (folder / f"genesys_predictive_{i}.py").write_text(
            "from genesys_dialer.dags.factory import campaign_dags  # an Airflow DAG file\n\n"
            f"globals().update(campaign_dags(__file__, shard={i}, shards=2))\n")
    entries = "".join(f"  - {{key: c{i}, campaign_id: id-{i}}}\n" for i in range(8))
    config = _write(tmp_path, "campaigns:\n" + entries)
    script = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(folder)!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors.values()), "
        "'files': {d.dag_id: d.fileloc.rsplit('/', 1)[-1] for d in bag.dags.values()}}))\n"
    )
    env = {**os.environ, "GENESYS_DIALER_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == []
    assert sorted(parsed["files"]) == [f"genesys_predictive_c{i}" for i in range(8)]
    assert set(parsed["files"].values()) == {"genesys_predictive_0.py", "genesys_predictive_1.py"}


def test_segment_size_auto_sizes_segments_from_the_batch_the_pool_and_the_connections():
    (auto,) = parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c"}]})
    assert auto.segment_size == "auto"
    # A 1M batch at defaults: 4 segments (the pool's 5 slots, one left for the run's other tasks) of 250 requests.
    assert auto.segment_size_for(1_000_000) == 250_000
    assert auto.segment_size_for(200_000) == 50_000
    assert auto.segment_size_for(5000) == 5000  # fewer than 50 requests: one segment, not five tasks
    assert auto.segment_size_for(120_001) == 61_000  # 121 requests: 2 segments of whole requests
    (wide,) = parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "pool_slots": 17,
                                              "genesys_conn_ids": ["a", "b"]}]})
    assert wide.segment_size_for(1_000_000) == 63_000  # 16 streams
    assert [wide.segment_conn_id(i) for i in range(4)] == ["a", "b", "a", "b"]
    assert auto.sending_conn_ids == ("genesys_default",)
    (fixed,) = parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "segment_size": "700"}]})
    assert fixed.segment_size_for(1_000_000) == 700
    with pytest.raises(ConfigError, match=r"segment_size.*'auto' or a whole number"):
        parse_campaigns({"campaigns": [{"key": "k", "campaign_id": "c", "segment_size": "big"}]})


def test_the_params_live_on_the_dag_and_every_task_runs_with_them():
    """The Params are the DAG's alone (Airflow would otherwise deep-copy and serialize them with every task:
    over half of the parse time of many campaigns), yet every task's run sees them, with their defaults, the
    trigger's conf over them, and the conf checked against their schemas."""
    from airflow.sdk.definitions.param import ParamValidationError, process_params
    from airflow.serialization.serialized_objects import DagSerialization

    from genesys_dialer.dags.builder import build_campaign_dag

    first, second = (build_campaign_dag(c) for c in parse_campaigns({"campaigns": [
        {"key": "a", "campaign_id": "c-a"}, {"key": "b", "campaign_id": "c-b", "segment_size": 500}]}))
    assert first.params.get_param("batch_size").schema["maximum"] == 1_000_000
    assert second.params.get_param("batch_size").schema["maximum"] == 500 * 1024
    dry_run_schema = first.params.get_param("dry_run").schema
    assert dry_run_schema["enum"] == ["auto", "dry", "live", True, False, None]
    assert dry_run_schema["title"] == "Dry run" and set(dry_run_schema["values_display"]) == {
        "auto", "dry", "live", "true", "false", "null"}
    assert not any(t.params for t in [*first.tasks, *second.tasks])

    serialized = DagSerialization.to_dict(second)["dag"]
    assert [name for name, _ in serialized["params"]] == ["batch_size", "dry_run"]
    assert DagSerialization.deserialize(dict(serialized["params"])["dry_run"]["schema"]) == json.loads(
        json.dumps(second.params.get_param("dry_run").schema))  # the trigger form's schema, as built
    assert all("params" not in t["__var"] for t in serialized["tasks"])
    assert DagSerialization.from_dict(DagSerialization.to_dict(second)).params.dump() == {
        "batch_size": 5000, "dry_run": "auto"}

    for task in second.tasks:
        assert process_params(second, task, None, suppress_exception=False) == {
            "batch_size": 5000, "dry_run": "auto"}
    # (Airflow's process_params writes the conf into the Param objects it merges: a task process runs one task,
    # so the next resolution sees a DAG parsed anew. Same as when each task held a copy.)
    for task in second.tasks:
        assert process_params(second, task, {"dry_run": False, "batch_size": 7}, suppress_exception=False) == {
            "batch_size": 7, "dry_run": False}
    create_segment = second.get_task("create_segment")
    with pytest.raises(ParamValidationError, match="batch_size"):
        process_params(second, create_segment, {"batch_size": 500 * 1024 + 1}, suppress_exception=False)
    # Odd spellings do not pass for a mode: the run fails before anything is claimed or sent.
    for odd in ("yes", "Live", " live", "LIVE", "false", "0", 0, 1, "", [], {"live": True}):
        with pytest.raises(ParamValidationError, match=r"dry_run.*is not one of"):
            process_params(second, create_segment, {"dry_run": odd}, suppress_exception=False)
    # Each DAG has schemas of its own: changing one campaign's cannot reach another's.
    first.params.get_param("dry_run").schema["enum"].append("yes")
    assert "yes" not in second.params.get_param("dry_run").schema["enum"]


def test_a_dag_file_building_too_many_campaigns_says_how_many_files_to_use(tmp_path, monkeypatch, caplog):
    from genesys_dialer.dags import factory

    monkeypatch.setattr(factory, "CAMPAIGNS_PER_FILE", 2)
    entries = "".join(f"  - {{key: c{i}, campaign_id: id-{i}}}\n" for i in range(7))
    monkeypatch.setenv("GENESYS_DIALER_CONFIG", str(_write(tmp_path, "campaigns:\n" + entries)))
    caplog.set_level("WARNING", logger=factory.__name__)
    assert len(factory.campaign_dags(tmp_path / "dag.py")) == 7
    (record,) = [r for r in caplog.records if r.name == factory.__name__]
    assert "builds 7 campaign DAGs" in record.getMessage()
    assert "over 4 DAG files, campaign_dags(__file__, shard=i, shards=4) in file i = 0 .. 3" in record.getMessage()
    caplog.clear()
    assert sum(len(factory.campaign_dags(tmp_path / f"d{i}.py", shard=i, shards=4)) for i in range(4)) == 7
    assert not [r for r in caplog.records if r.name == factory.__name__]  # no shard builds more than 4


def test_a_connection_shared_by_campaigns_on_different_databases_is_named_once_per_config(
        tmp_path, monkeypatch, caplog):
    """Their breaker is shared (Variables); their rate budget and the count of the breaker's openings are shared only
    if they keep them in one database (budget_postgres_conn_id): otherwise the operator is told which connection,
    and what to do."""
    from genesys_dialer.dags import factory

    entries = ("  - {key: a, campaign_id: id-a}\n"
               "  - {key: b, campaign_id: id-b, postgres_conn_id: other_db}\n"
               "  - {key: c, campaign_id: id-c, postgres_conn_id: other_db, genesys_conn_id: own_client}\n")
    monkeypatch.setenv("GENESYS_DIALER_CONFIG", str(_write(tmp_path, "campaigns:\n" + entries)))
    caplog.set_level("WARNING", logger=factory.__name__)
    assert len(factory.campaign_dags(tmp_path / "dag.py")) == 3
    (record,) = [r for r in caplog.records if r.name == factory.__name__]
    message = record.getMessage()
    assert "Genesys connection genesys_default is used by campaigns whose rate budgets live in different " \
        "databases (dialer_postgres, other_db)" in message and "own_client" not in message
    assert "Set budget_postgres_conn_id to one of them in the config's defaults" in message
    caplog.clear()
    factory.campaign_dags(tmp_path / "d1.py", shard=1, shards=2)
    assert not [r for r in caplog.records if r.name == factory.__name__]  # said by shard 0's file only

    # One budget database named in the defaults: the campaigns pace the client together; nothing to say.
    monkeypatch.setenv("GENESYS_DIALER_CONFIG", str(_write(
        tmp_path, "defaults: {budget_postgres_conn_id: budget_db}\ncampaigns:\n" + entries)))
    caplog.clear()
    dags = factory.campaign_dags(tmp_path / "dag.py")
    assert len(dags) == 3 and not [r for r in caplog.records if r.name == factory.__name__]
    # ...while a campaign that names another again splits the client's budget.
    monkeypatch.setenv("GENESYS_DIALER_CONFIG", str(_write(
        tmp_path, "defaults: {budget_postgres_conn_id: budget_db}\ncampaigns:\n" + entries
        + "  - {key: d, campaign_id: id-d, budget_postgres_conn_id: elsewhere}\n")))
    caplog.clear()
    factory.campaign_dags(tmp_path / "dag.py")
    (record,) = [r for r in caplog.records if r.name == factory.__name__]
    assert "databases (budget_db, elsewhere)" in record.getMessage()
