"""Seed case 1: net1 feeds net2; the two losses are summed and backpropagated once.

Expected graphprobe verdict: no cut. One connected graph; tol_loss reaches net1.weight,
net1.bias, net2.weight, net2.bias, and net1's subgraph is shared by loss1 and loss2.
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

    tol_loss = loss2 + loss1

    opt1.zero_grad()
    opt2.zero_grad()
    tol_loss.backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
