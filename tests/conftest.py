"""Shared fixtures: the seed's two nets, and a place for outputs."""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile

import pytest
import torch
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# No example database, and nothing of hypothesis's inside the checkout (.hypothesis/, where it
# would also cache the constants it mines from the code under test): runs stay reproducible and
# the tree clean.
settings.register_profile("graphprobe-default", database=None)
settings.load_profile("graphprobe-default")
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), f"graphprobe-hypothesis-{os.getuid()}"))
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")


@pytest.fixture
def seed_nets():
    torch.manual_seed(0)
    net1 = nn.Linear(3, 3)
    net2 = nn.Linear(3, 3)
    opt1 = torch.optim.Adam(net1.parameters(), lr=0.002)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.002)
    return net1, net2, opt1, opt2


@pytest.fixture
def sample():
    def path(name: str) -> str:
        p = os.path.join(SAMPLES, name)
        assert os.path.isfile(p), p
        return p

    return path


@pytest.fixture(scope="session")
def sample_report():
    """``sample_report("case4_numpy.py")``: the report ``graphprobe render`` makes of a sample.

    Each sample runs once per session (in-process, as the CLI runs it), however many tests read it.
    """
    cache: dict[tuple[str, tuple[str, ...]], object] = {}

    def run(name: str, *args: str):
        key = (name, args)
        if key not in cache:
            from graphprobe.run.options import RunOptions
            from graphprobe.run.script import run_script

            cache[key] = run_script(RunOptions(os.path.join(SAMPLES, name), list(args))).report
        return cache[key]

    return run


def other_samples(known):
    """The single-process samples not in ``known``, as pytest params.

    gpt2_tiny needs transformers (the gpt2 extra) and skips, saying so, without it.
    """
    out = []
    for f in sorted(set(f for f in os.listdir(SAMPLES) if f.endswith(".py")) - set(known)
                    - {"ddp_script.py", "fsdp_script.py"}):
        if f == "gpt2_tiny.py" and importlib.util.find_spec("transformers") is None:
            out.append(pytest.param(f, marks=pytest.mark.skip(reason="needs transformers (the gpt2 extra)")))
        else:
            out.append(f)
    return out
