"""Shared fixtures: the seed's two nets, and a place for outputs."""
from __future__ import annotations

import os
import sys

import pytest
import torch
from hypothesis import settings

# No example database inside the checkout (.hypothesis/): runs stay reproducible and the tree clean.
settings.register_profile("graphprobe-default", database=None)
settings.load_profile("graphprobe-default")
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
