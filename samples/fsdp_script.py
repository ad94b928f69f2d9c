"""Two-rank FSDP2 (``torch.distributed.fsdp.fully_shard``) on CPU (gloo): a trunk sharded as its
own unit, a main head, and an aux_head whose output is computed every step but never used in the
loss (a bug).

Run it with torchrun (it reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the environment):
  torchrun --nproc-per-node 2 --standalone fsdp_script.py
  torchrun --nproc-per-node 2 --standalone --no-python graphprobe render fsdp_script.py -o out.json

Unlike DDP, FSDP2 raises nothing about the unused head: it trains 20 steps and prints the loss,
and aux_head's gradient stays None on both ranks. Each rank holds half of every parameter (a
DTensor shard, what the optimizer steps); the forward runs on all-gathered full-size copies.
Expected graphprobe verdict: loss does not reach model.aux_head.weight, model.aux_head.bias
(unreached, held by opt; error), parameters named and shaped as in the unsharded Net;
out.rank0.json and out.rank1.json.
"""
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.head = nn.Linear(8, 1)
        self.aux_head = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.trunk(x))
        return self.head(h), self.aux_head(h)


dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)  # the same full weights on every rank before sharding (FSDP2 does not broadcast)

model = Net()
fully_shard(model.trunk)  # its own unit: gathered for its forward, freed again after it
fully_shard(model)        # the root unit: head and aux_head
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.MSELoss()
x = torch.rand(8, 4) + rank  # each rank its own shard of the batch
target = torch.ones(8, 1)

for step in range(20):
    out, aux = model(x)  # aux is never used below: aux_head gets no gradient
    loss = loss_fn(out, target)
    opt.zero_grad()
    loss.backward()
    opt.step()

print(f"rank {rank}: loss={loss.item():.4f}, aux_head.weight.grad is None: {model.aux_head.weight.grad is None}")
dist.destroy_process_group()
