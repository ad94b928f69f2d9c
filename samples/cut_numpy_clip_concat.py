"""Cut by numpy functions between exit and re-entry: net1's output goes out with .numpy(),
through np.clip and np.concatenate (a bias column), and back with torch.from_numpy.

Expected graphprobe verdict: cut (error). loss2 does not reach net1.weight, net1.bias; the
summed loss reaches net1 only through loss1.
"""
import numpy as np
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(4, 3)
tgt1 = torch.full((4, 3), 0.5)
tgt2 = torch.ones(4, 3)
net1 = nn.Linear(3, 3)
net2 = nn.Linear(4, 3)
loss_fn = nn.MSELoss()
opt1 = torch.optim.Adam(net1.parameters(), lr=0.01)
opt2 = torch.optim.Adam(net2.parameters(), lr=0.01)

for step in range(100):
    out1 = net1(x)
    loss1 = loss_fn(out1, tgt1)
    arr = out1.detach().numpy()
    arr = np.clip(arr, 0.0, 1.0)
    arr = np.concatenate([arr, np.ones((4, 1), dtype=np.float32)], axis=1)
    feats = torch.from_numpy(arr)
    loss2 = loss_fn(net2(feats), tgt2)
    opt1.zero_grad()
    opt2.zero_grad()
    (loss1 + loss2).backward()
    opt1.step()
    opt2.step()

print(f"loss1={loss1.item():.4f} loss2={loss2.item():.4f}")
