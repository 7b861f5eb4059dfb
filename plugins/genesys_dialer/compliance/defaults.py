"""Defaults of the compliance config fields, in a module light enough for DAG parsing (config.py imports it)."""

from __future__ import annotations

DEFAULT_SUPPRESSION_VALUES = ("do_not_call",)
DEFAULT_CALLABLE_STATUSES = ("active",)
DEFAULT_INACTIVE_STATUSES = ("inactive", "closed")
DEFAULT_CONSENT_VALUES = ("true", "t", "yes", "y", "1")


def normalize_value(value: str) -> str:
    """How config values are compared with the columns: trimmed, lower case (``genesys_dialer_norm`` in SQL)."""
    return value.strip().lower()
