"""Cut by .detach() alone: an autoencoder whose code is detached before the decoder (a bug:
both halves are meant to train, and one optimizer holds both).

Expected graphprobe verdict: cut (error). loss does not reach encoder.weight, encoder.bias
(only decoder.weight, decoder.bias); no other loss reaches the encoder either.
"""
import torch
from torch import nn

torch.manual_seed(0)

x = torch.rand(8, 6)
encoder = nn.Linear(6, 2)
decoder = nn.Linear(2, 6)
loss_fn = nn.MSELoss()
opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=0.01)

for step in range(100):
    code = encoder(x)
    code = code.detach()
    recon = decoder(code)
    loss = loss_fn(recon, x)
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"loss={loss.item():.4f}")
