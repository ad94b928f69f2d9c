"""The one trace recording now: the slot every part of the recorder reads (``active``).

A module of its own so that the tagged values, the mode and the patches read the same slot the
recorder sets, without importing the recorder.
"""
from __future__ import annotations

from typing import Any

#: the :class:`graphprobe.record.recorder.Trace` now recording (None when none is)
active: Any = None
