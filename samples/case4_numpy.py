"""Seed case 4: net1's output goes through numpy (* 0.5) and back before net2.

Expected graphprobe verdict: cut (error). Two components; loss2 does not reach net1.weight,
net1.bias (only net2.weight, net2.bias). The path went detach -> numpy -> * 0.5 -> from_numpy;
tmp is a new leaf that requires grad but belongs to no module or optimizer.
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

    tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)
    tmp.requires_grad_(True)

    output = net2(tmp)
    loss2 = loss_fun(output, tgt2)

    opt1.zero_grad()
    opt2.zero_grad()
    loss1.backward()
    loss2.backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
