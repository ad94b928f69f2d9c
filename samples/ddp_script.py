"""Two-rank DistributedDataParallel on CPU (gloo): a trunk, a main head, and an aux_head whose
output is computed every step but never used in the loss (a bug).

Run it with torchrun (it reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the environment):
  torchrun --nproc-per-node 2 --standalone ddp_script.py
  torchrun --nproc-per-node 2 --standalone --no-python graphprobe render ddp_script.py -o out.json

On its own it crashes at the second forward (L42) with DDP's "Expected to have finished reduction
in the prior iteration ... Parameter indices which did not receive grad for rank 0: 4 5".
Expected graphprobe verdict: loss does not reach model.aux_head.weight, model.aux_head.bias
(unreached, held by opt; error); out.rank0.json and out.rank1.json.
"""
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


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
torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)

model = DDP(Net())
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

if rank == 0:
    print(f"loss={loss.item():.4f}")
dist.destroy_process_group()
