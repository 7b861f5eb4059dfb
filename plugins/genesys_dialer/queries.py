"""Load and run the project's SQL: ``include/sql/*.sql``, shipped in the wheel as ``genesys_dialer/sql``.

In a checkout ``plugins/genesys_dialer/sql`` is a symlink to ``include/sql``, so the same package-resource
lookup serves an editable install, Airflow's plugins folder and the installed wheel.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load_sql(name: str) -> str:
    resource = files("genesys_dialer").joinpath("sql", f"{name}.sql")
    if not resource.is_file():
        raise FileNotFoundError(f"SQL file {name}.sql is not in the genesys_dialer package's sql/ resources")
    return resource.read_text(encoding="utf-8")


def run_sql(conn: Any, name: str, params: dict[str, Any]) -> int:
    """Execute one statement of ``include/sql/<name>.sql`` with bound parameters, commit, return the rowcount."""
    with conn.cursor() as cur:
        cur.execute(load_sql(name), params)
        count = cur.rowcount
    conn.commit()
    return count
