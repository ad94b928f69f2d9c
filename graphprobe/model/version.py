"""The version of the report's public JSON contract (``"schema"`` in ``Report.to_dict()``).

A module of its own, importing nothing, so that the networkx view (:mod:`graphprobe.model.nxview`),
which :mod:`graphprobe.model.graph` calls, can read it without importing the report.
"""
from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 1
