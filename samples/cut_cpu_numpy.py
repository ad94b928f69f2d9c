"""Cut by .cpu().numpy(): net1's output is normalised in numpy, then re-enters with
torch.as_tensor(arr); the two losses are backpropagated separately, and no error is raised.

Expected graphprobe verdict: cut (error). loss2 does not reach net1.weight, net1.bias (only
net2.weight, net2.bias).
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
opt1 = torch.optim.Adam(net1.parameters(), lr=0.01)
opt2 = torch.optim.Adam(net2.parameters(), lr=0.01)

for step in range(100):
    out1 = net1(x)
    loss1 = loss_fn(out1, tgt1)
    arr = out1.detach().cpu().numpy()
    arr = (arr - arr.mean()) / (arr.std() + 1e-6)
    feats = torch.as_tensor(arr)
    loss2 = loss_fn(net2(feats), tgt2)
    opt1.zero_grad()
    opt2.zero_grad()
    loss1.backward()
    loss2.backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
