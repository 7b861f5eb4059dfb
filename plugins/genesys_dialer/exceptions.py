"""Errors the package raises, classified so retry policies can tell transient from permanent."""

from __future__ import annotations


class GenesysDialerError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(GenesysDialerError, ValueError):
    """The campaign config file is missing or invalid; the message names file, campaign and field."""


class ComplianceError(GenesysDialerError):
    """The pipeline refuses to claim or send because the state its compliance checks rely on is in doubt."""
