"""The renderers, fed from saved reports (``tests/fixtures/reports/*.json``): no training step runs.

The fixtures are the JSON that ``graphprobe render`` writes for a few samples, regenerated with
the pictures by ``python docs/regenerate.py`` (``tests/test_docs.py`` fails when one is stale).
Each test reads what it expects from the fixture's own data, so a fixture regenerated after a
change in the analysis still checks the same promises.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from graphprobe.locations import short_location
from graphprobe.render.registry import known_extensions, renderer_for
from graphprobe.report import Report

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "reports").glob("*.json"))
IDS = [p.stem for p in FIXTURES]


def _load(path: Path) -> tuple[dict[str, Any], Report]:
    d = json.loads(path.read_text(encoding="utf-8"))
    return d, Report.from_dict(d)


def test_the_fixtures_are_there():
    # docs/regenerate.py writes them; an empty glob would make every test below vacuous
    assert {"case4_numpy", "pseudo_lidar", "case2_backward_twice"} <= set(IDS)


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_a_saved_report_reads_back_whole(path: Path) -> None:
    d, report = _load(path)
    assert report.to_dict() == d
    # and the JSON renderer writes the file it was read from, byte for byte
    assert renderer_for("x.json").render(report) == path.read_bytes()


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_the_text_report_states_every_finding_of_the_saved_one(path: Path) -> None:
    d, report = _load(path)
    text = renderer_for("x.txt").render(report).decode("utf-8")
    headline = " ".join(text.split("\n\n")[0].split())  # the verdict, wrapped to the terminal
    assert headline == " ".join(f"graphprobe: {d['verdict']}".split())
    for loss in d["losses"]:
        assert loss["name"] in text
    for cut in d["cuts"]:
        if not cut["ignored"]:
            assert f"{cut['kind']} cut at {short_location(cut['location'])}" in text, cut["location"]
    for err in d["errors"]:
        assert f"[{err['severity']}]" in text
    assert f"{d['findings']['error']} error(s), {d['findings']['warning']} warning(s)" in text


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_the_dot_draws_each_cut_red_with_its_line(path: Path) -> None:
    d, report = _load(path)
    dot = renderer_for("x.dot").render(report).decode("utf-8")
    cut_edges = [line for line in dot.splitlines() if re.search(r'class="cut cut\d+"', line)]
    assert len(cut_edges) == len(d["cuts"])
    for cut in d["cuts"]:
        here = short_location(cut["location"])
        mine = [e for e in cut_edges if here in e and "no gradient flows back" in e]
        assert mine, here
        if cut["severity"] == "error":  # an error is drawn red; an info cut in a quieter colour
            assert all('color="#d62728"' in e for e in mine), here
    for p in d["params"]:  # every parameter the report names is in the picture (folded or not)
        assert (p["module"] or p["name"]) in dot, p["name"]


@pytest.mark.parametrize("path", FIXTURES, ids=IDS)
def test_the_html_page_embeds_ids_that_are_drawn(path: Path) -> None:
    d, report = _load(path)
    page = renderer_for("x.html").render(report).decode("utf-8")
    drawn = {int(i) for i in re.findall(r'<g id="n(\d+)" class="node', page)}
    assert drawn
    m = re.search(r'<script type="application/json" id="gp-data">(.*?)</script>', page, re.S)
    assert m, "the page carries its data"
    data = json.loads(m.group(1))
    # what the page's findings and inspector point at are nodes the page drew (issue 11)
    for cut in data["cuts"]:
        assert {cut["from"]["node"], cut["to"]["node"]} <= drawn, cut["location"]
    for p in data["params"]:
        assert p["node"] is None or p["node"] in drawn, p["name"]
    assert {n["id"] for n in data["nodes"]} >= drawn


def test_every_registered_extension_renders_a_saved_report(tmp_path: Path) -> None:
    _, report = _load(FIXTURES[IDS.index("case4_numpy")])
    for ext in known_extensions():
        out = renderer_for(f"x{ext}").render(report)
        assert isinstance(out, bytes) and out, ext
