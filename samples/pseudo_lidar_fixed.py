"""Pseudo-LiDAR fixed: as pseudo_lidar.py, but the back-projection of the depth map to a
point cloud is written in torch, so the detector's loss trains the depth net too.

Expected graphprobe verdict: no cut. loss and det_loss both reach every parameter of
depth_net (depth_net.0.*, depth_net.2.*) and detector (detector.0.*, detector.2.*).
"""
import torch
from torch import nn

FX, FY, CX, CY = 10.0, 10.0, 3.5, 3.5


def backproject(depth):
    h, w = depth.shape
    rows = torch.arange(h, dtype=depth.dtype)
    cols = torch.arange(w, dtype=depth.dtype)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    x = (u - CX) * depth / FX
    y = (v - CY) * depth / FY
    return torch.stack([x, y, depth], dim=-1).reshape(-1, 3)


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
    points = backproject(depth[0, 0])
    box = detector(points).max(dim=0).values
    det_loss = loss_fn(box, gt_box)
    loss = depth_loss + det_loss

    opt_depth.zero_grad()
    opt_det.zero_grad()
    loss.backward()
    opt_depth.step()
    opt_det.step()

print(f"depth_loss={depth_loss.item():.4f} det_loss={det_loss.item():.4f}")
