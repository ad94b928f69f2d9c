"""``assert_grad_flow``: two targets of one name, a cut-off encoder, nothing to check, frozen parameters."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from graphprobe import assert_grad_flow
from graphprobe.errors import ProbeInputError


class _AutoEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(3, 3)
        self.dec = nn.Linear(3, 3)


def _cut_loss(m: _AutoEncoder) -> torch.Tensor:
    return m.dec(m.enc(torch.ones(2, 3)).detach()).sum()


def test_assert_grad_flow_two_targets_of_one_name():
    torch.manual_seed(0)
    targets = [_AutoEncoder().enc, _AutoEncoder().dec]  # no frame variable names either module
    loss = targets[1](targets[0](torch.ones(2, 3)).detach()).sum()
    with pytest.raises(AssertionError) as ei:
        assert_grad_flow(loss, *targets)
    msg = str(ei.value)
    assert "gradient does not reach 2 parameters" in msg
    assert "weight" in msg and "bias" in msg
    # The decoder is reached: passing it alone passes.
    assert_grad_flow(loss, targets[1])


def test_assert_grad_flow_enc_cut_off_is_caught():
    torch.manual_seed(0)
    m = _AutoEncoder()
    with pytest.raises(AssertionError) as ei:
        assert_grad_flow(_cut_loss(m), m.enc, m.dec)
    # Neither module has a name in this frame: both are "linear", told apart by their index.
    assert "linear0.weight" in str(ei.value) and "linear1" not in str(ei.value)


def test_assert_grad_flow_with_nothing_to_check_raises():
    def step() -> None:
        w = torch.ones(3, requires_grad=True)
        assert_grad_flow((w * 2).sum())

    with pytest.raises(ProbeInputError, match="found no parameters to check"):
        step()


def test_assert_grad_flow_still_skips_frozen():
    torch.manual_seed(0)
    m = _AutoEncoder()
    m.enc.requires_grad_(False)
    assert_grad_flow(_cut_loss(m), m.enc, m.dec)
