"""The transforms pytorch/examples uses, on PIL images (Pillow) or arrays."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

__all__ = ["Compose", "ToTensor", "Normalize", "Lambda", "Resize", "CenterCrop", "ToPILImage"]


class Compose:
    def __init__(self, transforms: list[Callable[[Any], Any]]) -> None:
        self.transforms = transforms

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    def __call__(self, pic: Any) -> torch.Tensor:
        a = np.array(pic)
        if a.ndim == 2:
            a = a[:, :, None]
        t = torch.from_numpy(a.transpose(2, 0, 1).copy())
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()


class Normalize:
    def __init__(self, mean: Any, std: Any) -> None:
        self.mean, self.std = mean, std

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(self.mean, dtype=t.dtype).view(-1, 1, 1)
        s = torch.as_tensor(self.std, dtype=t.dtype).view(-1, 1, 1)
        return (t - m) / s


class Lambda:
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        return self.fn(x)


def _size(size: Any, w: int, h: int) -> tuple[int, int]:
    if isinstance(size, int):  # the shorter side becomes `size`
        return (size, max(1, round(h * size / w))) if w <= h else (max(1, round(w * size / h)), size)
    return int(size[1]), int(size[0])


class Resize:
    def __init__(self, size: Any, interpolation: Any = None) -> None:
        self.size = size

    def __call__(self, img: Any) -> Any:
        if isinstance(img, torch.Tensor):
            h, w = img.shape[-2:]
            nw, nh = _size(self.size, w, h)
            return torch.nn.functional.interpolate(img.unsqueeze(0), size=(nh, nw), mode="bilinear").squeeze(0)
        return img.resize(_size(self.size, *img.size))


class CenterCrop:
    def __init__(self, size: Any) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, img: Any) -> Any:
        th, tw = self.size
        if isinstance(img, torch.Tensor):
            h, w = img.shape[-2:]
            i, j = max(0, (h - th) // 2), max(0, (w - tw) // 2)
            return img[..., i:i + th, j:j + tw]
        w, h = img.size
        i, j = max(0, (h - th) // 2), max(0, (w - tw) // 2)
        return img.crop((j, i, j + tw, i + th))


class ToPILImage:
    def __call__(self, t: Any) -> Any:
        from PIL import Image

        a = (t.detach().clamp(0, 1) * 255).byte().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if a.ndim == 3:
            a = a.transpose(1, 2, 0)
            if a.shape[2] == 1:
                a = a[:, :, 0]
        return Image.fromarray(a)
