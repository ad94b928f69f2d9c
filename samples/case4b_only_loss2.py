"""Seed case 4b: as case 4, but only loss2.backward(); both optimizers still step.

Expected graphprobe verdict: cut (error). loss2 does not reach net1.weight, net1.bias: opt1
holds them but they never get a grad, so opt1.step() does nothing and net1's output stays
bit-for-bit unchanged (this script checks that).
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.ones(2, 3) * 0.2
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)
with torch.no_grad():
    raw_output1 = net1(x)

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
    loss2.backward()
    opt1.step()
    opt2.step()

with torch.no_grad():
    output1 = net1(x)
unchanged = torch.equal(raw_output1, output1)
print(f"net1 output unchanged: {unchanged} (loss2={loss2.item():.4f})")
