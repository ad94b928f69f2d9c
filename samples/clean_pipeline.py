"""A clean two-stage pipeline: arithmetic (* 0.5 + 1), a frozen layer and torch.cat sit
between stage1 and stage2; frozen is requires_grad_(False) and not in the optimizer.

Expected graphprobe verdict: nothing wrong. One connected graph; loss reaches stage1.weight,
stage1.bias, stage2.weight, stage2.bias; frozen.weight, frozen.bias are frozen on purpose.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(4, 3)
target = torch.ones(4, 2)
stage1 = nn.Linear(3, 4)
frozen = nn.Linear(4, 4)
frozen.requires_grad_(False)
stage2 = nn.Linear(8, 2)
loss_fn = nn.MSELoss()
opt = torch.optim.Adam(list(stage1.parameters()) + list(stage2.parameters()), lr=0.01)

for step in range(100):
    h = stage1(x)
    h = h * 0.5 + 1
    h = torch.cat([h, frozen(h)], dim=1)
    output = stage2(h)
    loss = loss_fn(output, target)
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"loss={loss.item():.4f}")
