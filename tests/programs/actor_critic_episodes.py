"""An actor-critic unrolled over two episodes of 40 steps, one backward for both.

The advantage uses the critic's value through ``.item()`` (a baseline taken as a constant,
as intended): a cut per step, none of them an error. Used by tests/test_pictures.py.
"""
import torch
from torch import nn

torch.manual_seed(0)


class Policy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.affine = nn.Linear(4, 32)
        self.action_head = nn.Linear(32, 2)
        self.value_head = nn.Linear(32, 1)

    def forward(self, x):
        h = torch.relu(self.affine(x))
        return torch.softmax(self.action_head(h), dim=-1), self.value_head(h)


# Run as a script (graphprobe render runs it as __main__); importing it does nothing.
if __name__ == "__main__":
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    policy_terms, value_terms = [], []
    for episode in range(2):
        log_probs, values, rewards = [], [], []
        state = torch.randn(4)
        for t in range(40):
            probs, value = policy(state)
            dist = torch.distributions.Categorical(probs)
            action = dist.sample()
            log_probs.append(dist.log_prob(action))
            values.append(value)
            rewards.append(1.0 if int(action) == t % 2 else 0.0)
            state = torch.randn(4)
        ret, returns = 0.0, []
        for r in reversed(rewards):
            ret = r + 0.99 * ret
            returns.insert(0, ret)
        for lp, v, g in zip(log_probs, values, returns):
            advantage = g - v.item()  # the baseline as a constant: no gradient to the critic here
            policy_terms.append(-lp * advantage)
            value_terms.append(nn.functional.smooth_l1_loss(v.squeeze(), torch.tensor(g)))
    loss = torch.stack(policy_terms).sum() + torch.stack(value_terms).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
