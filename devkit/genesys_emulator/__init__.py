"""A stdlib-only Genesys Cloud outbound API emulator for tests and local runs (see README.md)."""

from .config import EmulatorConfig
from .server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer"]
