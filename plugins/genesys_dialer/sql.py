"""Load and run the project's SQL from ``include/sql`` (or the copy packaged into the wheel)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

_PACKAGED = Path(__file__).parent / "sql"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "include" / "sql"


def sql_dir() -> Path:
    """``include/sql`` in a source checkout (editable install, plugins folder), else the wheel's copy."""
    return _SOURCE_TREE if _SOURCE_TREE.is_dir() else _PACKAGED


@cache
def load_sql(name: str) -> str:
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {name}.sql not found in {sql_dir()}")
    return path.read_text(encoding="utf-8")


def run_sql(conn: Any, name: str, params: dict[str, Any]) -> int:
    """Execute one statement of ``include/sql/<name>.sql`` with bound parameters, commit, return the rowcount."""
    with conn.cursor() as cur:
        cur.execute(load_sql(name), params)
        count = cur.rowcount
    conn.commit()
    return count
