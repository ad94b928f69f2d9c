"""Cut by .tolist(): net1's outputs are sorted as Python lists, then rebuilt with
torch.tensor(rows) as net2's input; one optimizer holds both nets.

Expected graphprobe verdict: cut (error). loss2 does not reach net1.weight, net1.bias; the
summed loss reaches net1 only through loss1.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(4, 3)
tgt1 = torch.full((4, 3), 0.5)
tgt2 = torch.ones(4, 3)
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)
loss_fn = nn.MSELoss()
opt = torch.optim.Adam(list(net1.parameters()) + list(net2.parameters()), lr=0.01)

for step in range(100):
    out1 = net1(x)
    loss1 = loss_fn(out1, tgt1)
    rows = out1.tolist()
    rows = [sorted(row) for row in rows]
    feats = torch.tensor(rows)
    loss2 = loss_fn(net2(feats), tgt2)
    loss = loss1 + loss2
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
