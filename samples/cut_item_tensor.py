"""Cut by .item(): net1 predicts a scale, which leaves autograd as a Python float and comes
back through torch.tensor(...) to scale net2's input.

Expected graphprobe verdict: cut (error). loss does not reach net1.weight, net1.bias (only
net2.weight, net2.bias); opt1 holds net1's parameters but they never get a grad.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(4, 3)
target = torch.ones(4, 3)
net1 = nn.Linear(3, 1)
net2 = nn.Linear(3, 3)
loss_fn = nn.MSELoss()
opt1 = torch.optim.Adam(net1.parameters(), lr=0.01)
opt2 = torch.optim.Adam(net2.parameters(), lr=0.01)

for step in range(100):
    opt1.zero_grad()
    opt2.zero_grad()
    scale = net1(x).mean()
    value = scale.item()
    scale_t = torch.tensor(value)
    loss = loss_fn(net2(x * scale_t), target)
    loss.backward()
    opt1.step()
    opt2.step()

print(f"loss={loss.item():.4f} scale={value:.4f}")
