"""Regenerate every picture in docs/ from the samples: ``python docs/regenerate.py``.

Each ``samples/<name>.py`` is rendered to ``docs/samples/<name>.svg`` with
``graphprobe render samples/<name>.py -o docs/samples/<name>.svg -q``, run in-process from the
repository root so the paths inside the pictures are relative (``samples/case4_numpy.py:26``)
and the bytes do not depend on where the checkout lives. The README's headline picture,
``docs/case4.svg``, is rendered from ``samples/case4_numpy.py`` the same way.

The same run saves a few samples' reports as JSON in ``tests/fixtures/reports/``: the renderers
are tested from those (``tests/test_render_fixtures.py``) without rerunning a training step.

``python docs/regenerate.py --check`` renders into a temporary folder instead, writes nothing
in docs/, and exits 1 listing every picture that is stale, missing, or left over from a sample
that no longer exists (``tests/test_docs.py`` runs this check).

The layout engine is pinned to ``graphviz-pure`` (a dependency of graphprobe) unless
``GRAPHPROBE_DOT`` is set, so a system Graphviz ``dot`` does not change the bytes. The pictures
also depend on the versions of torch and graphviz-pure: after
upgrading one of them, run this script and commit the pictures it changes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = "samples"
OUT = "docs/samples"
#: Samples not rendered, and why.
SKIP = {
    "ddp_script.py": "needs torchrun (several processes); render it by hand",
    "fsdp_script.py": "needs torchrun (several processes); render it by hand",
    # Its bytes follow the installed transformers (an optional test extra), not our code.
    "gpt2_tiny.py": "needs transformers (the gpt2 extra); render it by hand",
}
#: Script arguments for samples that are too slow with their defaults.
ARGS = {
    "gru_unrolled.py": ["200"],  # 200 steps instead of 3000: the same picture, collapsed, in 1 s
}
#: Outputs outside docs/samples/: (script, output), both relative to the repository root.
EXTRA = [
    ("samples/case4_numpy.py", "docs/case4.svg"),  # README.md's headline picture
] + [  # saved reports the renderers' tests read (tests/test_render_fixtures.py): no step is rerun
    (f"samples/{name}.py", f"tests/fixtures/reports/{name}.json")
    for name in ("case4_numpy", "case2_backward_twice", "pseudo_lidar", "gan_detach", "actor_critic")
]
#: Exit codes that still write the picture: 0, and 6 (the script's backward raised: case 2).
OK_CODES = (0, 6)


def targets() -> list[tuple[str, str, list[str]]]:
    """``(script, output, script args)`` for every picture, paths relative to the repository root."""
    out: list[tuple[str, str, list[str]]] = []
    for script in sorted((ROOT / SAMPLES).glob("*.py")):
        if script.name in SKIP:
            continue
        out.append((f"{SAMPLES}/{script.name}", f"{OUT}/{script.stem}.svg", ARGS.get(script.name, [])))
    out += [(s, o, ARGS.get(Path(s).name, [])) for s, o in EXTRA]
    return out


def _pure_engine() -> str | None:
    found = shutil.which("graphviz-pure")
    if found:
        return found
    here = Path(sys.executable).parent
    for name in ("graphviz-pure", "graphviz-pure.exe"):
        if (here / name).is_file():
            return str(here / name)
    return None


@contextlib.contextmanager
def _at_root() -> Iterator[None]:
    """Run from the repository root with the layout engine pinned; restore both afterwards."""
    old_cwd = os.getcwd()
    old_engine = os.environ.get("GRAPHPROBE_DOT")
    os.chdir(ROOT)
    if not old_engine:
        pure = _pure_engine()
        if pure:
            os.environ["GRAPHPROBE_DOT"] = pure
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_engine is None:
            os.environ.pop("GRAPHPROBE_DOT", None)
        else:
            os.environ["GRAPHPROBE_DOT"] = old_engine


def render_all(dest: Path | None = None, verbose: bool = False) -> list[str]:
    """Render every picture, into ``dest`` (same relative paths) or in place; return failures."""
    from graphprobe.cli import main

    failures: list[str] = []
    with _at_root():
        for script, output, args in targets():
            path = str(dest / output) if dest is not None else output
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if verbose:
                print(f"render {script} {' '.join(args)}".rstrip() + f" -> {output}", flush=True)
            # The samples print a line each; keep it out of the way.
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(["render", script, "-o", path, "-q", *args])
            if code not in OK_CODES or not Path(path).is_file():
                failures.append(f"{script}: graphprobe render exited {code}")
    return failures


def check() -> list[str]:
    """Render into a temporary folder and compare: one line per stale, missing or orphan picture."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="graphprobe-docs-") as tmp:
        fresh = Path(tmp)
        problems += render_all(fresh)
        wanted = {output for _, output, _ in targets()}
        for output in sorted(wanted):
            new, old = fresh / output, ROOT / output
            if not new.is_file():
                continue  # already reported as a failed render
            if not old.is_file():
                problems.append(f"{output}: missing")
            elif old.read_bytes() != new.read_bytes():
                problems.append(f"{output}: stale")
    for orphan in sorted((ROOT / OUT).glob("*.svg")):
        rel = orphan.relative_to(ROOT).as_posix()
        if rel not in wanted:
            problems.append(f"{rel}: no sample makes it any more (delete it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python docs/regenerate.py",
        description="Render every sample's picture into docs/ (or, with --check, only compare).")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the pictures that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        if problems:
            print("docs pictures out of date (run `python docs/regenerate.py` and commit):")
            for p in problems:
                print("  " + p)
            return 1
        print(f"docs pictures up to date ({len(targets())} pictures)")
        return 0
    failures = render_all(verbose=True)
    for name, why in SKIP.items():
        if (ROOT / SAMPLES / name).is_file():
            print(f"skipped {SAMPLES}/{name}: {why}")
    for f in failures:
        print("FAILED " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
