"""Cut inside a module's forward: Model runs self.coarse, rounds its output in numpy, and
feeds the result to self.fine.

Expected graphprobe verdict: cut (error). loss does not reach model.coarse.weight,
model.coarse.bias (only model.fine.weight, model.fine.bias); opt holds all four.
"""
import numpy as np
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.coarse = nn.Linear(3, 3)
        self.fine = nn.Linear(3, 3)

    def forward(self, x):
        c = self.coarse(x)
        c_np = np.round(c.detach().numpy(), 2)
        c = torch.from_numpy(c_np)
        return self.fine(c)


torch.manual_seed(0)

x = torch.rand(4, 3)
target = torch.ones(4, 3)
model = Model()
loss_fn = nn.MSELoss()
opt = torch.optim.Adam(model.parameters(), lr=0.01)

for step in range(100):
    opt.zero_grad()
    loss = loss_fn(model(x), target)
    loss.backward()
    opt.step()

print(f"loss={loss.item():.4f}")
