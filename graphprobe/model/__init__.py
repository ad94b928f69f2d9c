"""The data model at the bottom of graphprobe: typed findings and the report's data.

Nothing here imports analysis, render, the report's renderers or the runner; the report's data
(:mod:`graphprobe.model.report`) reads only the walked graph (:mod:`graphprobe.model.graph`) and
:mod:`graphprobe.locations`.
"""
from __future__ import annotations

from .findings import (SEVERITIES, Cause, Cut, Finding, Freed, Opaque, RebuiltLeaf, ScriptError, Starved,
                       Unreached, severity_rank, worst)
from .report import ReportData
from .version import SCHEMA_VERSION

__all__ = ["SEVERITIES", "SCHEMA_VERSION", "Cause", "Cut", "Finding", "Freed", "Opaque", "RebuiltLeaf",
           "ReportData", "ScriptError", "Starved", "Unreached", "severity_rank", "worst"]
