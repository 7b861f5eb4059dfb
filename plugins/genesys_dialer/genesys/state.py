"""Where shared state lives: Airflow Variables in tasks, process memory elsewhere.

The design card keeps the OAuth token cache and the circuit breaker's state in Airflow Variables so every
task instance of every campaign DAG using one Genesys connection shares them. Variables have no locking
and no compare-and-set, so callers store facts any writer may set, never counters.

Both stores behave the same on the edges the breaker relies on: ``get`` of a missing key is ``None``,
``delete`` of a missing key is a no-op, and ``keys`` is a (costly, one API round trip per 1000 keys)
listing by prefix that callers keep off their hot path.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

log = logging.getLogger(__name__)


class StateStore(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...


class MemoryStateStore:
    """Process-local store: plain pytest, CLI tools, and the fallback when no task context exists."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            raw = self._data.get(key)
        if not raw:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        encoded = json.dumps(value)  # same constraint as Variables: JSON-able values only
        with self._lock:
            self._data[key] = encoded

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return [k for k in self._data if k.startswith(prefix)]


class VariableStateStore:
    """Airflow Variables through the Task SDK (the API server in real workers)."""

    def get(self, key: str) -> dict[str, Any] | None:
        from airflow.sdk import Variable

        try:
            value = Variable.get(key, default=None, deserialize_json=True)
        except ValueError:  # not JSON (someone edited it in the UI): treat as absent, the next set repairs it
            log.warning("Variable %s does not hold JSON; ignoring it", key)
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(key, value, serialize_json=True)

    def delete(self, key: str) -> None:
        """Delete ``key``; a key that is already gone (another writer deleted it) is not an error."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType

        try:
            Variable.delete(key)
        except AirflowRuntimeError as err:
            if getattr(err.error, "error", None) != ErrorType.VARIABLE_NOT_FOUND:
                raise

    def keys(self, prefix: str) -> list[str]:
        from airflow.sdk import Variable

        return list(Variable.keys(prefix=prefix))


_process_store = MemoryStateStore()


def in_task_context() -> bool:
    """True inside a running Airflow task, where Variables can be read and written."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - airflow always ships it
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def default_store() -> StateStore:
    """Variables inside a task, process memory outside (where Variables cannot be reached)."""
    return VariableStateStore() if in_task_context() else _process_store
