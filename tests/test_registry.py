"""The renderer registry by output extension (graphprobe.render.registry): every format gives the
bytes of its ``Report`` method, the command line writes through it, and an unknown extension is a
one-line usage error (exit 2) that lists the known ones."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from graphprobe.cli import FORMATS, main
from graphprobe.errors import EXIT_USAGE, UsageError
from graphprobe.render import registry
from graphprobe.render.dot import DotOptions
from graphprobe.render.registry import UnknownExtension, known_extensions, renderer_for, renderers

# The picture options a direct call and the registry both get (title, depth, budget, expand).
OPTS: dict[str, Any] = {"title": "registry", "depth": 1, "budget": 50, "expand": ("detector",)}


def _png(report: Any, tmp_path: Path, **opts: Any) -> bytes:
    report.to_png(str(tmp_path / "direct.png"), **opts)
    return (tmp_path / "direct.png").read_bytes()


#: Each extension -> the bytes the matching Report method gives (what `render -o x.EXT` wrote
#: before the registry existed).
DIRECT: dict[str, Callable[..., bytes]] = {
    ".txt": lambda r, tmp, **o: r.to_text().encode("utf-8"),
    ".json": lambda r, tmp, **o: (r.to_json() + "\n").encode("utf-8"),
    ".dot": lambda r, tmp, **o: r.to_dot(**o).encode("utf-8"),
    ".gv": lambda r, tmp, **o: r.to_dot(**o).encode("utf-8"),
    ".svg": lambda r, tmp, **o: r.to_svg(**o).encode("utf-8"),
    ".png": _png,
    ".html": lambda r, tmp, **o: r.to_html(**o).encode("utf-8"),
}


@pytest.fixture(autouse=True)
def _pure_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """One layout engine, graphviz-pure, as docs/regenerate.py pins it: one set of bytes."""
    pure = shutil.which("graphviz-pure") or str(Path(sys.executable).parent / "graphviz-pure")
    assert os.path.isfile(pure), "graphviz-pure (a dependency of graphprobe) is not installed"
    monkeypatch.setenv("GRAPHPROBE_DOT", pure)


def test_every_registered_extension_has_its_report_method() -> None:
    # A format added to the registry must say here which Report method it matches.
    assert known_extensions() == sorted(DIRECT)
    assert {r.name for r in renderers()} == {"text", "json", "dot", "svg", "png", "html"}
    assert FORMATS == {ext: renderer_for(f"x{ext}").name for ext in known_extensions()}


@pytest.mark.parametrize("ext", sorted(DIRECT))
def test_each_extension_gives_the_bytes_of_its_report_method(ext: str, sample_report, tmp_path: Path) -> None:
    report = sample_report("pseudo_lidar.py")
    for opts in ({}, OPTS):
        got = renderer_for(f"out{ext}").render(report, DotOptions(**opts))
        assert isinstance(got, bytes) and got
        assert got == DIRECT[ext](report, tmp_path, **opts), (ext, opts)


@pytest.mark.parametrize("ext", [".txt", ".json", ".dot", ".svg"])
def test_the_command_line_writes_what_the_registry_renders(ext: str, sample_report, tmp_path: Path) -> None:
    report = sample_report("case1_sum.py")
    saved = tmp_path / "run.json"
    saved.write_bytes(renderer_for(saved).render(report))
    out = tmp_path / f"shown{ext}"
    assert main(["show", str(saved), "-o", str(out), "--depth", "1", "--title", "t"]) == 0
    assert out.read_bytes() == renderer_for(out).render(report, DotOptions(title="t", depth=1))


def test_the_extension_chooses_in_any_case_and_through_folders() -> None:
    assert renderer_for("a/b.c/GRAPH.SVG").name == "svg"
    assert renderer_for(Path("x.gv")) is renderer_for("y.dot")
    assert renderer_for("report.tar.json").name == "json"


@pytest.mark.parametrize("path, ext", [("x.bmp", ".bmp"), ("graph", ""), ("a.svg/b", ""), ("x.svgz", ".svgz")])
def test_an_unknown_extension_is_a_usage_error_listing_the_known_ones(path: str, ext: str) -> None:
    with pytest.raises(UnknownExtension) as e:
        renderer_for(path)
    assert isinstance(e.value, UsageError) and e.value.exit_code == EXIT_USAGE == 2
    assert (e.value.path, e.value.extension, e.value.known) == (path, ext, known_extensions())
    msg = str(e.value)
    assert msg.count("\n") == 0 and msg.startswith("graphprobe: unknown output extension")
    assert repr(ext or "(none)") in msg and ", ".join(known_extensions()) in msg


def test_an_unknown_extension_exits_2_with_one_line(sample_report, sample, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "run.json"
    saved.write_bytes(renderer_for(saved).render(sample_report("case1_sum.py")))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    for argv in (["show", str(saved), "-o", "x.bmp"], ["render", sample("case1_sum.py"), "-o", "x.bmp"],
                 ["check", sample("case1_sum.py"), "-q", "-o", "x.bmp"]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("graphprobe: unknown output extension '.bmp' in x.bmp")
        assert all(e in err for e in known_extensions()) and "-o -" in err
    assert sorted(os.listdir(tmp_path)) == ["run.json"]  # refused before anything ran or was written


class _Shout:
    """A renderer of our own: the text report in capitals."""

    name = "shout"
    extensions: tuple[str, ...] = (".shout",)

    def render(self, report: Any, options: DotOptions | None = None) -> bytes:
        return report.to_text().upper().encode("utf-8")


def test_a_registered_renderer_is_what_the_command_line_writes(sample_report, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    report = sample_report("case1_sum.py")
    saved = tmp_path / "run.json"
    saved.write_bytes(renderer_for(saved).render(report))
    assert main(["show", str(saved), "-o", str(tmp_path / "x.shout")]) == 2  # not known yet
    monkeypatch.setattr(registry, "_BY_EXTENSION", dict(registry._BY_EXTENSION))  # undone after
    shout = registry.register(_Shout())
    assert renderer_for("x.SHOUT") is shout and ".shout" in known_extensions()
    assert main(["show", str(saved), "-o", str(tmp_path / "x.shout")]) == 0
    assert (tmp_path / "x.shout").read_bytes() == report.to_text().upper().encode("utf-8")


def test_register_refuses_a_clash_and_a_badly_written_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_BY_EXTENSION", dict(registry._BY_EXTENSION))
    before = dict(registry._BY_EXTENSION)

    class Clash(_Shout):
        extensions = (".shout2", ".svg")

    class Upper(_Shout):
        extensions = (".SHOUT",)

    class Dotless(_Shout):
        extensions = ("shout",)

    for bad in (Clash(), Upper(), Dotless()):
        with pytest.raises(ValueError):
            registry.register(bad)
        assert registry._BY_EXTENSION == before  # nothing half-registered
    r = _Shout()
    assert registry.register(r) is r and registry.register(r) is r  # the same one again is fine
