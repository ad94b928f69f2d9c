"""Seed case 2: as case 1, but loss1.backward() then loss2.backward() on the shared graph.

Expected graphprobe verdict: crash (error). loss2.backward() needs the saved buffers of
net1's nodes (AddmmBackward0 etc.) that loss1.backward() already freed. Fixes: backward
tol_loss = loss1 + loss2 once, or loss1.backward(retain_graph=True).
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.ones(2, 3) * 0.2
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)

tgt1 = torch.ones(2, 3) * 0.5
tgt2 = torch.ones(2, 3)
loss_fun = nn.MSELoss()
opt1 = torch.optim.Adam(net1.parameters(), 0.002)
opt2 = torch.optim.Adam(net2.parameters(), 0.002)

for step in range(200):
    tmp = net1(x)
    loss1 = loss_fun(tmp, tgt1)

    output = net2(tmp)
    loss2 = loss_fun(output, tgt2)

    opt1.zero_grad()
    opt2.zero_grad()
    loss1.backward()
    loss2.backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
