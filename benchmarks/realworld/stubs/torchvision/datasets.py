"""Datasets that generate random data of the real ones' shapes (seeded, nothing downloaded)."""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

# Small on purpose: the harness runs one step. GP_STANDIN_N overrides the train split's size.
_N_TRAIN = int(os.environ.get("GP_STANDIN_N", "512"))
_N_TEST = max(64, _N_TRAIN // 4)


class _Images(torch.utils.data.Dataset):
    shape: tuple[int, ...] = (28, 28)
    classes = [str(i) for i in range(10)]

    def __init__(self, root: Any = None, train: bool = True, download: bool = False,
                 transform: Callable[[Any], Any] | None = None,
                 target_transform: Callable[[Any], Any] | None = None) -> None:
        self.root, self.train = root, train
        self.transform, self.target_transform = transform, target_transform
        n = _N_TRAIN if train else _N_TEST
        g = np.random.default_rng(1 if train else 2)
        self.data = torch.from_numpy(g.integers(0, 256, size=(n,) + self.shape, dtype=np.uint8))
        self.targets = torch.from_numpy(g.integers(0, len(self.classes), size=n)).long()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from PIL import Image

        img = Image.fromarray(self.data[i].numpy())
        target = int(self.targets[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class MNIST(_Images):
    shape = (28, 28)


class FashionMNIST(MNIST):
    pass


class CIFAR10(_Images):
    shape = (32, 32, 3)


class FakeData(torch.utils.data.Dataset):
    def __init__(self, size: int = 1000, image_size: tuple[int, int, int] = (3, 224, 224), num_classes: int = 10,
                 transform: Callable[[Any], Any] | None = None,
                 target_transform: Callable[[Any], Any] | None = None, random_offset: int = 0) -> None:
        self.size, self.image_size, self.num_classes = min(size, _N_TRAIN), image_size, num_classes
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from PIL import Image

        g = np.random.default_rng(i)
        c, h, w = self.image_size
        a = g.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        img = Image.fromarray(a[:, :, 0] if c == 1 else a)
        target = int(g.integers(0, self.num_classes))
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class ImageFolder(torch.utils.data.Dataset):
    """Files under ``root/<class>/``, read with Pillow, as the real ImageFolder does."""

    def __init__(self, root: str, transform: Callable[[Any], Any] | None = None,
                 target_transform: Callable[[Any], Any] | None = None) -> None:
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.samples = [(os.path.join(root, c, f), k) for k, c in enumerate(self.classes)
                        for f in sorted(os.listdir(os.path.join(root, c)))]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from PIL import Image

        path, target = self.samples[i]
        img = Image.open(path).convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target
