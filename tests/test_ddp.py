"""Distributed runs: ``torchrun ... graphprobe render`` on a 2-rank CPU (gloo) DDP script.

Every rank writes its own report (``out.rank0.json``, ``out.rank1.json``); parameters are named
as without the wrapper (``model.aux_head.weight``, no ``module.`` level); a head whose output
never reaches the loss is reported as unreached, with its optimizer, although DDP raises its own
error at the next forward before the step's backward call site can repeat.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from graphprobe.cli import main
from graphprobe.record.names import collect_known

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
AUX = ["model.aux_head.weight", "model.aux_head.bias"]
ALL = ["model.trunk.weight", "model.trunk.bias", "model.head.weight", "model.head.bias", *AUX]


def _tool(name: str) -> str:
    """A console script of this environment: beside sys.executable, else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    assert found, f"{name} is not installed beside {sys.executable}"
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"  # else torchrun warns that it sets it
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    for _ in range(3):  # the free port may be taken between the probe and torchrun's bind
        cmd = [_tool("torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(_free_port()), "--no-python", *argv]
        p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        if "address already in use" not in p.stderr.lower():
            return p
    return p


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_torchrun_ddp_unreached_aux_head(tmp_path):
    p = _torchrun(tmp_path, _tool("graphprobe"), "render", str(SAMPLES / "ddp_script.py"),
                  "-o", str(tmp_path / "out.json"))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert sorted(os.listdir(tmp_path)) == ["out.rank0.json", "out.rank1.json"]
    # Only rank 0 speaks; the script's own "loss=" line never comes (the capture ends first).
    assert p.stderr.count("graphprobe: wrote ") == 1
    assert f"graphprobe: wrote {tmp_path / 'out.rank0.json'}" in p.stderr
    assert "rank 1" not in p.stderr and p.stdout == ""
    for rank in (0, 1):
        d = json.loads((tmp_path / f"out.rank{rank}.json").read_text(encoding="utf-8"))
        assert [x["name"] for x in d["params"]] == ALL
        assert not any(".module." in n["module"] or n["module"].endswith(".module")
                       for n in d["nodes"] if n["module"])
        un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
        assert sorted(un) == sorted(AUX)
        for x in un.values():
            assert x["optimizers"] == ["opt"] and x["severity"] == "error"
        assert sorted(d["reaches"]["loss"]) == sorted(ALL[:4])
        assert d["findings"]["error"] == 2
        # The step ends at opt.step(), before the next forward where DDP would raise its own
        # "Expected to have finished reduction" error: no error, no note about it; the unreached
        # parameters are the finding.
        assert d["errors"] == []
        assert not any("Expected to have finished reduction" in n for n in d["notes"])
        assert d["verdict"].endswith("model.aux_head.weight, model.aux_head.bias get no gradient from it")


def test_other_ranks_write_their_own_file_quietly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    case1 = str(SAMPLES / "case1_sum.py")
    assert main(["render", case1, "-o", "g.json"]) == 0
    assert main(["render", case1, "-o", "-"]) == 0
    assert main(["check", case1]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # rank 1 prints no progress and no text report
    assert os.listdir(tmp_path) == ["g.rank1.json"]
    monkeypatch.setenv("RANK", "0")
    assert main(["render", case1, "-o", "g.json"]) == 0
    out, err = capsys.readouterr()
    assert "wrote g.rank0.json" in err
    assert main(["render", str(tmp_path / "nope.py"), "-o", "g.json"]) == 3
    assert capsys.readouterr().err.startswith("graphprobe (rank 0): no such script")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["render", case1, "-o", "g.json", "-q"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["g.json", "g.rank0.json", "g.rank1.json"]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(2, 2)
        self.module = nn.Linear(2, 2)  # the user's own submodule called "module" keeps its name


def test_wrapper_level_left_out_of_names():
    torch.manual_seed(0)
    model = nn.DataParallel(_Net())  # noqa: F841  (found in the frame)
    plain = _Net()  # noqa: F841
    known = collect_known(sys._getframe())
    names = [p.name for p in known.params.values()]
    assert names == [f"{m}.{s}.{w}" for m in ("model", "plain") for s in ("trunk", "module")
                     for w in ("weight", "bias")]
    assert known.module_path(model.module) == "model" and known.module_path(model) == "model"
    assert known.module_path(model.module.module) == "model.module"
