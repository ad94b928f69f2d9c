"""A tiny actor-critic: the advantage is computed with .detach(), so it is a constant weight
in the actor loss and the policy gradient does not flow into the critic.

Expected graphprobe verdict: no error; info only. actor_loss does not reach critic.weight,
critic.bias by design (advantage.detach()); critic_loss reaches them; loss reaches all four.
"""
import torch
from torch import nn

torch.manual_seed(0)

actor = nn.Linear(4, 2)
critic = nn.Linear(4, 1)
opt_actor = torch.optim.Adam(actor.parameters(), lr=0.01)
opt_critic = torch.optim.Adam(critic.parameters(), lr=0.01)

for step in range(100):
    state = torch.randn(16, 4)
    dist = torch.distributions.Categorical(logits=actor(state))
    action = dist.sample()
    reward = (action == (state[:, 0] > 0).long()).float()
    value = critic(state).squeeze(1)
    advantage = (reward - value).detach()
    actor_loss = -(dist.log_prob(action) * advantage).mean()
    critic_loss = (reward - value).pow(2).mean()
    loss = actor_loss + critic_loss

    opt_actor.zero_grad()
    opt_critic.zero_grad()
    loss.backward()
    opt_actor.step()
    opt_critic.step()

print(f"actor_loss={actor_loss.item():.4f} critic_loss={critic_loss.item():.4f}")
