"""A tiny GAN step: the discriminator loss uses D(fake.detach()) on purpose, so that
d_loss trains D only; g_loss then backpropagates through D into G.

Expected graphprobe verdict: no error; info only. d_loss does not reach G.weight, G.bias by
design (fake.detach()), and g_loss reaches them; opt_g and opt_d each get their own params.
"""
import torch
from torch import nn

torch.manual_seed(0)

G = nn.Linear(2, 3)
D = nn.Linear(3, 1)
bce = nn.BCEWithLogitsLoss()
opt_g = torch.optim.Adam(G.parameters(), lr=0.01)
opt_d = torch.optim.Adam(D.parameters(), lr=0.01)
real = torch.randn(16, 3) * 0.5 + 1.0
ones = torch.ones(16, 1)
zeros = torch.zeros(16, 1)

for step in range(100):
    z = torch.randn(16, 2)
    fake = G(z)

    opt_d.zero_grad()
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    d_loss.backward()
    opt_d.step()

    opt_g.zero_grad()
    g_loss = bce(D(fake), ones)
    g_loss.backward()
    opt_g.step()

print(f"d_loss={d_loss.item():.4f} g_loss={g_loss.item():.4f}")
