"""The README's examples run: its Python blocks, its test file (under pytest, with the plugin),
and each ``$ graphprobe ...`` line of its console block; its links point inside the repository;
the user docs cite the blog post and the paper by name."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from graphprobe.cli import main

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {"README.md": README, "samples/README.md": (ROOT / "samples" / "README.md").read_text(encoding="utf-8")}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_user_docs_cite_the_sources_by_name_and_link_inside_the_repo():
    for name, text in DOCS.items():
        assert "End-to-End Pseudo-LiDAR for Image-Based 3D Object" in " ".join(text.split()), name
        assert "loss.backward() when networks" in text and "Qian et al., CVPR 2020" in text, name
        assert "seed-cases" not in text and "/work/" not in text and "the seed" not in text.lower(), name
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text):
            link = target[0] or target[1]
            assert not re.match(r"[a-z]+://", link), f"{name} links outside the repository: {link}"
            path = (base / link.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{name}: {link}"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_blocks_run(in_tmp, capsys):
    blocks = [b for b in _blocks("python") if not b.startswith("# test_")]
    assert len(blocks) >= 2
    ns: dict = {}
    for b in blocks:  # in order, one namespace: a later block may use an earlier one's `r`
        exec(compile(b, "README.md", "exec"), ns)
    assert (in_tmp / "cor.svg").is_file() and (in_tmp / "case4.graphml").is_file()
    assert "numpy cut at README.md:" in capsys.readouterr().out


def test_the_test_file_passes_under_pytest(pytester):
    (block,) = [b for b in _blocks("python") if b.startswith("# test_training.py")]
    pytester.makepyfile(test_training=block)
    res = pytester.runpytest_inprocess("-p", "graphprobe.pytest_plugin", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=2)


CONSOLE = [ln for b in _blocks("console") for ln in b.splitlines() if ln.startswith("$ ")]


def test_the_console_block_has_its_lines():
    assert len(CONSOLE) >= 4


@pytest.mark.parametrize("line", CONSOLE)
def test_console_line_runs_with_the_exit_code_it_says(in_tmp, capsys, line):
    cmd, _, comment = line[2:].partition("#")
    argv = shlex.split(cmd)
    argv = argv[3:] if argv[:3] == ["python", "-m", "graphprobe"] else argv[1:]
    m = re.search(r"exit (\d+)", comment)
    rc = main([*argv, "-q"])
    out, err = capsys.readouterr()
    assert rc == (int(m.group(1)) if m else 0), (line, err)
    assert "Traceback" not in err
    if "-o" in argv and argv[argv.index("-o") + 1] != "-":
        assert (in_tmp / argv[argv.index("-o") + 1]).is_file(), line
    if "-o -" in cmd or argv[0] == "check":
        assert out.startswith("graphprobe: ")


def test_the_layout_section_lists_every_module_once():
    layout = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = [m for m in re.findall(r"`((?:graphprobe/)?[\w/]+\.py)`", layout)
              if not m.startswith(("tests/", "docs/", "benchmarks/", "samples/"))]
    package = ROOT / "graphprobe"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    named = {m.removeprefix("graphprobe/") for m in listed}
    required = {m for m in modules if not m.endswith("/__init__.py")}  # a folder's __init__ may go unsaid
    assert required - named == set(), "modules missing from the README's Layout section"
    assert named - modules == set(), "the Layout section names modules that do not exist"
    lines = [line for line in layout.splitlines() if line.startswith("- `")]
    per_line = [re.findall(r"^- `([\w/]+\.py)`", line) for line in lines]
    assert all(per_line), "each bullet starts with the module it is about"
