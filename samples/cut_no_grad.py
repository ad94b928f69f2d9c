"""Cut by torch.no_grad(): net1's forward runs under no_grad, its output feeds net2, and one
optimizer holds both nets as if they trained end to end.

Expected graphprobe verdict: cut (error). loss does not reach net1.weight, net1.bias (only
net2.weight, net2.bias); opt holds net1's parameters but they never get a grad.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(4, 3)
target = torch.ones(4, 3)
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)
loss_fn = nn.MSELoss()
opt = torch.optim.Adam(list(net1.parameters()) + list(net2.parameters()), lr=0.01)

for step in range(100):
    with torch.no_grad():
        feats = net1(x)
    output = net2(feats)
    loss = loss_fn(output, target)
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"loss={loss.item():.4f}")
