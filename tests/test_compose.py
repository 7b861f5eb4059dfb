"""Static checks of docker-compose.yaml, the Dockerfile and .env.example (no Docker engine on these machines).

What this cannot prove: that the images pull, that the containers start, that statsd-exporter accepts the
mapping at run time. What it does prove: the files fit together (mounts exist, names and ports agree,
images pinned, every variable documented).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")
REQUIRED_SERVICES = (*AIRFLOW_SERVICES, "postgres", "redis", "statsd-exporter", "prometheus", "grafana",
                     "genesys-emulator")
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def substitute(text: str, env: dict[str, str]) -> str:
    return VAR_RE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(substitute(COMPOSE_FILE.read_text(), env_example()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def flag_value(command: list[str], flag: str) -> str:
    for arg in command:
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not set in {command}")


def test_required_services_and_dependencies(services: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"services missing: {missing}"
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends:
            assert target in services, f"{name} depends on undefined service {target}"
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert {"postgres", "redis", "statsd-exporter"} <= set(depends), name
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["genesys-emulator"]["profiles"] == ["emulator"]
    emulator = services["genesys-emulator"]
    assert emulator["command"] == ["python", "-m", "genesys_emulator", "--host", "0.0.0.0", "--port", "8765"]
    assert "ports" not in emulator, "the emulator (and its admin API) is reachable only inside the compose network"
    assert env_of(emulator)["GENESYS_EMULATOR_ADMIN_TOKEN"] == env_example()["GENESYS_EMULATOR_ADMIN_TOKEN"], (
        "inside the network too, the admin API asks for a token")
    source = emulator["volumes"][0].split(":")[0]
    assert (REPO / source / "__main__.py").exists(), f"the emulator service mounts missing {source}"


def test_airflow_services_share_one_configuration(services: dict[str, Any]) -> None:
    envs = [env_of(services[name]) for name in AIRFLOW_SERVICES]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:" in env[
            "AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], "components must share the JWT secret"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
        assert "AIRFLOW_CONN_GENESYS_DEFAULT" in env and "AIRFLOW_CONN_DIALER_POSTGRES" in env
    assert all(services[name].get("build") == "." for name in AIRFLOW_SERVICES)


def test_metadata_sessions_cannot_stay_idle_in_a_transaction(services: dict[str, Any]) -> None:
    """Every Airflow service sets the metadata DB's idle-in-transaction timeout (the killed-scheduler wedge) and
    a task heartbeat timeout shorter than Airflow's 5 minutes; the connect args import and carry the timeout."""
    from importlib import import_module

    from genesys_dialer.metadata_db import IDLE_IN_TRANSACTION_TIMEOUT_MS

    def import_string(path: str) -> Any:  # what Airflow's conf.getimport does with the setting
        module, _, name = path.rpartition(".")
        return getattr(import_module(module), name)

    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        sync = import_string(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"])
        async_ = import_string(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"])
        assert sync["options"] == f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}", name
        assert async_["server_settings"]["idle_in_transaction_session_timeout"] == str(IDLE_IN_TRANSACTION_TIMEOUT_MS)
        assert 0 < int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) < 300, name
    assert len({services[name]["image"] for name in AIRFLOW_SERVICES}) == 1


def test_statsd_settings_match_the_exporter(services: dict[str, Any]) -> None:
    exporter = services["statsd-exporter"]
    udp_port = flag_value(exporter["command"], "--statsd.listen-udp").rsplit(":", 1)[1]
    mapping_target = flag_value(exporter["command"], "--statsd.mapping-config")
    mounts = dict(volume.split(":")[1::-1] for volume in exporter["volumes"])
    assert mounts[mapping_target] == "./deploy/statsd/mapping.yml"
    mapping = yaml.safe_load((REPO / "deploy/statsd/mapping.yml").read_text())
    prefixes = {rule["match"].split(".")[0] for rule in mapping["mappings"] if rule.get("match_type") != "regex"}
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        assert env["AIRFLOW__METRICS__STATSD_ON"].lower() == "true", name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter", name
        assert env["AIRFLOW__METRICS__STATSD_PORT"] == udp_port, name
        assert {env["AIRFLOW__METRICS__STATSD_PREFIX"]} == prefixes, name
        # deploy/statsd/mapping.yml maps Airflow's legacy dotted names; metrics.py sends its own tags.
        assert env["AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED"].lower() == "false", name


def test_prometheus_scrapes_the_exporter(services: dict[str, Any]) -> None:
    exporter_port = flag_value(services["statsd-exporter"]["command"], "--web.listen-address").rsplit(":", 1)[1]
    prometheus = services["prometheus"]
    config_target = flag_value(prometheus["command"], "--config.file")
    mounts = dict(volume.split(":")[1::-1] for volume in prometheus["volumes"] if volume.startswith("./"))
    config_path = REPO / mounts[config_target]
    config = yaml.safe_load(config_path.read_text())
    targets = [target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]]
    assert f"statsd-exporter:{exporter_port}" in targets
    # rule files resolve relative to the config file: they must be mounted beside it
    for rule_file in config["rule_files"]:
        container_path = str(Path(config_target).parent / rule_file)
        assert container_path in mounts, f"{rule_file} is not mounted at {container_path}"
        assert (REPO / mounts[container_path]) == config_path.parent / rule_file


def test_grafana_provisioning_points_at_the_mounts(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = dict(volume.split(":")[1::-1] for volume in grafana["volumes"] if volume.startswith("./"))
    datasources = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    url = datasources["datasources"][0]["url"]
    assert url == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]
    providers = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/genesys.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounts[path] == "./deploy/grafana/dashboards"
    assert list((REPO / "deploy/grafana/dashboards").glob("*.json"))
    assert mounts["/etc/grafana/provisioning/datasources"] == "./deploy/grafana/provisioning/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./deploy/grafana/provisioning/dashboards"


def test_every_bind_mount_exists(services: dict[str, Any]) -> None:
    checked = 0
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith(("./", "../", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
                checked += 1
    assert checked >= 8


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        _repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and "latest" not in tag, f"{name}: {image!r}"
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert froms == ["apache/airflow:3.3.2-python3.11"]


def test_dockerfile_matches_the_tested_airflow_and_copies_what_exists() -> None:
    import airflow

    text = DOCKERFILE.read_text()
    assert f"apache/airflow:{airflow.__version__}-python3.11" in text
    assert f'"apache-airflow=={airflow.__version__}"' in text
    for line in text.splitlines():
        if line.startswith("COPY"):
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert "pip install" in text and "/opt/airflow/dags/" in text


def test_env_example_covers_every_variable() -> None:
    used = set(VAR_RE.findall(COMPOSE_FILE.read_text()))
    names = {name for name, _ in used}
    documented = env_example()
    assert not sorted(names - set(documented)), f".env.example lacks {sorted(names - set(documented))}"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_env_example_has_no_real_secrets_and_valid_connections() -> None:
    env = env_example()
    for key, value in env.items():
        if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", key):
            assert value == "change-me", f"{key} must be a placeholder in .env.example"
    genesys = json.loads(env["AIRFLOW_CONN_GENESYS_DEFAULT"])
    assert genesys["conn_type"] == "genesys_cloud"
    assert {"host", "login", "password"} <= set(genesys)
    if "genesys-emulator" in genesys["host"]:
        assert genesys["host"].endswith(":8765")
        assert genesys["login"] == env["GENESYS_EMULATOR_CLIENT_ID"]
        assert genesys["password"] == env["GENESYS_EMULATOR_CLIENT_SECRET"]


def test_dialer_connection_is_valid_json(services: dict[str, Any]) -> None:
    env = env_example()
    conn = json.loads(env_of(services["airflow-worker"])["AIRFLOW_CONN_DIALER_POSTGRES"])
    assert conn == {"conn_type": "postgres", "host": "postgres", "port": 5432, "schema": env["DIALER_DB_NAME"],
                    "login": env["DIALER_DB_USER"], "password": env["DIALER_DB_PASSWORD"]}


def test_airflow_init_does_the_setup(services: dict[str, Any]) -> None:
    init = services["airflow-init"]
    env = env_of(init)
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    script_target = init["command"][0]
    mounts = dict(volume.split(":")[1::-1] for volume in init["volumes"] if volume.startswith("./"))
    script = (REPO / mounts[script_target]).read_text()
    assert 'airflow pools set genesys_api 5 "' in script
    assert "genesys-dialer apply-schema" in script
    assert "/entrypoint airflow version" in script  # runs _AIRFLOW_DB_MIGRATE / _AIRFLOW_WWW_USER_CREATE
    assert "ensure_dialer_db.py" in script
    for helper in re.findall(r"/opt/airflow/(deploy/airflow/\S+\.py)", script):
        assert f"/opt/airflow/{helper}" in mounts and (REPO / helper).exists()
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run([bash, "-n", str(REPO / mounts[script_target])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
