"""A model written by others: Hugging Face transformers' GPT2LMHeadModel, built from a tiny
GPT2Config (2 layers, 2 heads, 32 wide, vocabulary 100; no download, no tokenizer, no hub),
trained a few steps on random token ids with its own LM loss.

Expected graphprobe verdict: no cut. loss reaches all 28 parameters of model.transformer.*
(wte, wpe, h.0.*, h.1.*, ln_f); model.lm_head.weight is the same tensor as
model.transformer.wte.weight (tied), so it is listed once, under that name.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging

logging.set_verbosity_error()
torch.manual_seed(0)

config = GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                    bos_token_id=0, eos_token_id=0)
model = GPT2LMHeadModel(config)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
input_ids = torch.randint(0, 100, (4, 16))

for step in range(20):
    loss = model(input_ids, labels=input_ids).loss
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"loss={loss.item():.4f}")
