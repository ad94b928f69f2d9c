"""Cut by .data: net1's output is handed to net2 as tmp.data (an old idiom for "the values").

Expected graphprobe verdict: cut (error). loss2 does not reach net1.weight, net1.bias; the
summed loss reaches net1 only through loss1.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.ones(2, 3) * 0.2
tgt1 = torch.ones(2, 3) * 0.5
tgt2 = torch.ones(2, 3)
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)
loss_fn = nn.MSELoss()
opt1 = torch.optim.Adam(net1.parameters(), lr=0.002)
opt2 = torch.optim.Adam(net2.parameters(), lr=0.002)

for step in range(100):
    tmp = net1(x)
    loss1 = loss_fn(tmp, tgt1)
    output = net2(tmp.data)
    loss2 = loss_fn(output, tgt2)
    opt1.zero_grad()
    opt2.zero_grad()
    (loss1 + loss2).backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
