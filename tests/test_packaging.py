"""The distributions as a user gets them: declared dependencies, the architecture, and the built wheel.

* Every import of the runtime package (lazy ones included) comes from a distribution the wheel declares,
  and every declared dependency is imported somewhere; the same for the devkit.
* The layers and the absence of import cycles are import-linter contracts (pyproject.toml), checked here.
* The wheel holds exactly the runtime package and its SQL; installed into a clean virtualenv with Airflow
  (pinned by requirements.lock), a two-line DAG file and a campaigns.yaml parse into the campaign's DAG.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import warnings
import zipfile
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import REPO, SERVER_URL, SESSION, _admin_execute, _with_database

RUNTIME = REPO / "plugins" / "genesys_dialer"
DEVKIT = REPO / "devkit"
FIRST_PARTY = {
    "genesys_dialer": "airflow-genesys-dialer",
    "genesys_emulator": "genesys-dialer-devkit",
    "genesys_devkit": "genesys-dialer-devkit",
}
# Airflow's code lives in two distributions that the apache-airflow distribution pins; depending on
# apache-airflow is how Airflow's own providers declare them.
UMBRELLA = {"apache-airflow-core": "apache-airflow", "apache-airflow-task-sdk": "apache-airflow"}


def imported_modules(package_dir: Path) -> dict[str, set[str]]:
    """Absolute module names imported anywhere in ``package_dir`` (in functions too) -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def owning_distribution(module: str) -> str | None:
    """The installed distribution that provides ``module``; None for the standard library."""
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return None
    if top in FIRST_PARTY:
        return FIRST_PARTY[top]
    with warnings.catch_warnings():  # importing a parent package may warn (pgserver: no XDG_RUNTIME_DIR)
        warnings.simplefilter("ignore")
        spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is not installed"
    origin = Path(spec.origin).resolve()
    # Several distributions share a top-level name (airflow): the one that lists the module's file owns it.
    for name in _distributions_of(top):
        dist = importlib.metadata.distribution(name)
        if any(Path(dist.locate_file(f)).resolve() == origin for f in dist.files or ()):
            owner = canonicalize_name(name)
            return UMBRELLA.get(owner, owner)
    raise AssertionError(f"no installed distribution lists {origin} (the file of {module})")


def _distributions_of(top: str) -> list[str]:
    return _top_level_names().get(top, [])


@cache
def _top_level_names() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def declared(pyproject: Path, *, extras: bool = False) -> set[str]:
    """The distribution's dependencies (and, with ``extras``, those of all its extras), by canonical name."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    if extras:
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
    return {canonicalize_name(Requirement(r).name) for r in requirements}


# Dependencies that are data, read by the standard library rather than imported, each with its reader.
DATA_ONLY = {"tzdata": "zoneinfo: IANA zone names on hosts without a system zone database"}


def _check_dependencies(package_dirs: list[Path], own: str, deps: set[str]) -> None:
    used: dict[str, set[str]] = {name: set() for name in DATA_ONLY if name in deps}
    for package_dir in package_dirs:
        for module, files in imported_modules(package_dir).items():
            owner = owning_distribution(module)
            if owner is not None and owner != own:
                used.setdefault(owner, set()).update(files)
    undeclared = {name: sorted(files) for name, files in used.items() if name not in deps}
    assert not undeclared, f"{own}: imported but not declared in its pyproject.toml: {undeclared}"
    assert not deps - set(used), f"{own}: declared but never imported: {sorted(deps - set(used))}"


def test_the_wheel_declares_exactly_what_the_runtime_imports():
    _check_dependencies([RUNTIME], "airflow-genesys-dialer", declared(REPO / "pyproject.toml"))


def test_the_devkit_declares_exactly_what_it_imports():
    deps = declared(DEVKIT / "pyproject.toml", extras=True)
    _check_dependencies([DEVKIT / "genesys_devkit", DEVKIT / "genesys_emulator"], "genesys-dialer-devkit", deps)


def test_the_emulator_needs_only_the_standard_library():
    third_party = {
        module: sorted(files)
        for module, files in imported_modules(DEVKIT / "genesys_emulator").items()
        if module.partition(".")[0] not in (*sys.stdlib_module_names, "__future__", "genesys_emulator")
    }
    assert not third_party


def _lint_imports(cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else dict(os.environ)
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_layers_and_no_import_cycles():
    """The import-linter contracts of pyproject.toml: layers, no cycles, the wheel never imports the devkit."""
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_the_contracts_catch_a_layer_violation_and_a_cycle(tmp_path):
    """The check can fail: a copy of the package where the ledger imports the task bodies breaks both."""
    shutil.copytree(RUNTIME, tmp_path / "genesys_dialer", symlinks=True)
    for name in ("genesys_emulator", "genesys_devkit"):
        shutil.copytree(DEVKIT / name, tmp_path / name)
    claims = tmp_path / "genesys_dialer" / "ledger" / "claims.py"
    claims.write_text(claims.read_text() + "\n\ndef _bad():\n    from genesys_dialer.dags import tasks  # noqa\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = _lint_imports(tmp_path, pythonpath=str(tmp_path))
    assert result.returncode != 0
    assert "Layers of the runtime package BROKEN" in result.stdout
    assert "No import cycles BROKEN" in result.stdout
    assert "genesys_dialer.ledger.claims -> genesys_dialer.dags.tasks" in result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = out.glob("airflow_genesys_dialer-*.whl")
    return built


def test_the_wheel_is_exactly_the_runtime_package_and_its_sql(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    package = names - dist_info
    assert all(n.startswith("genesys_dialer/") for n in package), sorted(package)
    expected_py = {f"genesys_dialer/{p.relative_to(RUNTIME).as_posix()}" for p in RUNTIME.rglob("*.py")}
    assert {n for n in package if n.endswith(".py")} == expected_py
    expected_sql = {f"genesys_dialer/sql/{p.name}" for p in (REPO / "include" / "sql").glob("*.sql")}
    assert {n for n in package if n.endswith(".sql")} == expected_sql
    assert package == expected_py | expected_sql  # no tests, devkit, caches or stray files
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(next(n for n in dist_info if n.endswith("entry_points.txt"))).decode()
    assert "genesys_dialer:get_provider_info" in entry_points and "genesys_dialer.cli:main" in entry_points


TWO_LINE_DAG_FILE = (
    "from genesys_dialer.dags.factory import campaign_dags  # an Airflow DAG file\n"
    "\n"
    "globals().update(campaign_dags(__file__))\n"
)


@pytest.mark.timeout(300)
def test_the_wheel_installs_into_a_clean_virtualenv_and_its_dags_parse(wheel, tmp_path):
    """pip install the wheel (+ Airflow, pinned by requirements.lock) into an empty venv, outside the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {  # nothing of this test session's environment: not its Airflow config, not the checkout
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    for key in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if key in os.environ:
            env[key] = os.environ[key]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result

    # --no-compile: byte-compiling all of Airflow costs a third of the install and nothing here needs it.
    lock = str(REPO / "requirements.lock")
    run(str(bin_dir / "pip"), "install", "--quiet", "--no-compile", "-c", lock, str(wheel), timeout=240)

    probe = (
        "import importlib.util, genesys_dialer\n"
        "print(genesys_dialer.__file__)\n"
        "print([m for m in ('genesys_emulator', 'genesys_devkit') if importlib.util.find_spec(m)])\n"
    )
    located, devkit_found = run(str(bin_dir / "python"), "-c", probe).stdout.split()
    assert located.startswith(str(venv))  # the installed wheel, not the checkout
    assert devkit_found == "[]"  # the emulator and the demo are not in the wheel

    # The SQL ships as package data: the schema applies from the installed wheel.
    database = f"{SESSION}_wheel"
    _admin_execute(f'CREATE DATABASE "{database}"')
    try:
        applied = run(str(bin_dir / "genesys-dialer"), "apply-schema", "--dsn", _with_database(SERVER_URL, database))
        assert "Schema applied" in applied.stdout
        import psycopg

        with psycopg.connect(_with_database(SERVER_URL, database)) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"contacts", "dial_history", "dispatch_ledger", "pacing_decisions", "run_log"} <= tables
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "genesys_predictive.py").write_text(TWO_LINE_DAG_FILE)
    (dags / "campaigns.yaml").write_text(
        "campaigns:\n  - key: renewals\n    campaign_id: 5f3c0a52-1111-4222-8333-944455556666\n"
    )
    def airflow_json(*args: str) -> list[dict]:
        """The JSON table an ``airflow ... --output json`` command prints after its log lines."""
        return json.loads(run(str(bin_dir / "airflow"), *args, "--output", "json").stdout.strip().splitlines()[-1])

    run(str(bin_dir / "airflow"), "db", "migrate")
    listed = airflow_json("dags", "list", "--local")
    assert [(d["dag_id"], d["fileloc"]) for d in listed] == [
        ("genesys_predictive_renewals", str(dags / "genesys_predictive.py"))
    ]
    assert airflow_json("dags", "list-import-errors", "--local") == []
    providers = airflow_json("providers", "list")
    assert "airflow-genesys-dialer" in {p["package_name"] for p in providers}
