"""Pseudo-LiDAR with the cut: a conv depth net, a numpy back-projection of the depth map to
a point cloud (fixed fake intrinsics), then a point-MLP detector.

Expected graphprobe verdict: cut (error). det_loss does not reach depth_net.0.weight,
depth_net.0.bias, depth_net.2.weight, depth_net.2.bias; loss reaches them only via depth_loss.
"""
import numpy as np
import torch
from torch import nn

FX, FY, CX, CY = 10.0, 10.0, 3.5, 3.5


def backproject(depth):
    h, w = depth.shape
    rows = np.arange(h, dtype=depth.dtype)
    cols = np.arange(w, dtype=depth.dtype)
    v, u = np.meshgrid(rows, cols, indexing="ij")
    x = (u - CX) * depth / FX
    y = (v - CY) * depth / FY
    return np.stack([x, y, depth], axis=-1).reshape(-1, 3)


torch.manual_seed(0)

image = torch.rand(1, 1, 8, 8)
gt_depth = torch.full((1, 1, 8, 8), 2.0)
gt_box = torch.tensor([0.0, 0.0, 2.0, 1.0, 1.0, 1.0, 0.0])
depth_net = nn.Sequential(
    nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1), nn.Softplus()
)
detector = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 7))
loss_fn = nn.MSELoss()
opt_depth = torch.optim.Adam(depth_net.parameters(), lr=0.01)
opt_det = torch.optim.Adam(detector.parameters(), lr=0.01)

for step in range(50):
    depth = depth_net(image)
    depth_loss = loss_fn(depth, gt_depth)
    points = backproject(depth[0, 0].detach().numpy())
    points = torch.from_numpy(points)
    box = detector(points).max(dim=0).values
    det_loss = loss_fn(box, gt_box)
    loss = depth_loss + det_loss

    opt_depth.zero_grad()
    opt_det.zero_grad()
    loss.backward()
    opt_depth.step()
    opt_det.step()

print(f"depth_loss={depth_loss.item():.4f} det_loss={det_loss.item():.4f}")
