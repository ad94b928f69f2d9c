"""A GRUCell unrolled for `steps` time steps (argv[1], default 3000) with one backward at
the end: a deep graph (thousands of nodes on one path) that a recursive walk cannot handle.

Expected graphprobe verdict: no cut. loss reaches cell.weight_ih, cell.weight_hh,
cell.bias_ih, cell.bias_hh, head.weight, head.bias.
"""
import sys

import torch
from torch import nn

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000

torch.manual_seed(0)

cell = nn.GRUCell(2, 4)
head = nn.Linear(4, 1)
opt = torch.optim.Adam(list(cell.parameters()) + list(head.parameters()), lr=0.01)
inputs = torch.randn(steps, 1, 2)
target = torch.ones(1, 1)

opt.zero_grad()
h = torch.zeros(1, 4)
for t in range(steps):
    h = cell(inputs[t], h)
loss = nn.functional.mse_loss(head(h), target)
loss.backward()
opt.step()

print(f"steps={steps} loss={loss.item():.4f}")
