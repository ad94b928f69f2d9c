"""The data model at the bottom of graphprobe: typed findings (nothing above it is imported here)."""
from __future__ import annotations

from .findings import (SEVERITIES, Cause, Cut, Finding, Freed, Opaque, RebuiltLeaf, ScriptError, Starved,
                       Unreached, severity_rank, worst)

__all__ = ["SEVERITIES", "Cause", "Cut", "Finding", "Freed", "Opaque", "RebuiltLeaf", "ScriptError", "Starved",
           "Unreached", "severity_rank", "worst"]
