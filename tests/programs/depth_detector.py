"""A 40-block conv depth net, a numpy point-cloud step, then a 30-layer MLP detector.

The numpy step cuts the detector's loss off the depth net (the Pseudo-LiDAR bug): an error.
About 770 autograd nodes; ``depth_detector.py 80`` (80 blocks) makes about 1,400, the size of
the End-to-End Pseudo-LiDAR step. Used by tests/test_pictures.py and tests/test_html_browser.py.
"""
import sys

import numpy as np
import torch
from torch import nn

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class DepthNet(nn.Module):
    def __init__(self, blocks: int = 40, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(c) for _ in range(blocks)])
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, img):
        return self.head(self.blocks(self.stem(img)))


class Detector(nn.Module):
    def __init__(self, layers: int = 30, width: int = 16) -> None:
        super().__init__()
        self.inp = nn.Linear(3, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.out = nn.Linear(width, 7)

    def forward(self, pts):
        h = torch.relu(self.inp(pts))
        for layer in self.layers:
            h = torch.relu(layer(h))
        return self.out(h).mean(0)


# Run as a script (graphprobe render runs it as __main__); importing it does nothing.
if __name__ == "__main__":
    depth_net = DepthNet(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
    detector = Detector()
    opt = torch.optim.Adam(list(depth_net.parameters()) + list(detector.parameters()), lr=1e-3)
    img, depth_gt, box_gt = torch.randn(1, 3, 8, 8), torch.rand(1, 1, 8, 8), torch.zeros(7)

    depth = depth_net(img)
    depth_loss = nn.functional.l1_loss(depth, depth_gt)
    d = depth.detach().numpy()[0, 0]
    ys, xs = np.mgrid[0:8, 0:8]
    cloud = np.stack([xs * d, ys * d, d], axis=-1).reshape(-1, 3).astype(np.float32)
    points = torch.from_numpy(cloud)
    det_loss = nn.functional.smooth_l1_loss(detector(points), box_gt)
    loss = depth_loss + det_loss
    opt.zero_grad()
    loss.backward()
    opt.step()
