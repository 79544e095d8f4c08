"""The shipped counter's network, in PyTorch (imported only by training; the runtime needs ONNX).

A tiny CenterNet-style, class-agnostic item counter for a top-down carton view:

    input  images      (1, 3, H, W) float32 RGB 0..1, H x W = 192 x 256
    output peaks       (1, 1, H/4, W/4) centre heatmap after 3x3 max-pool peak picking: a cell
                       keeps its score only where it is the local maximum, zero elsewhere
           sizes       (1, 2, H/4, W/4) item width/height at each cell, as a fraction of W / H
           unreadable  (1, 1) probability the scene cannot be read (hand over the carton, ...)

Peak picking is inside the graph, so the runtime only thresholds and counts: no NMS.
"""

from __future__ import annotations

from functools import reduce

import torch
from torch import nn
from torch.nn import functional as F

INPUT_HW = (192, 256)
STRIDE = 4


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Counter(nn.Module):
    """`context` adds that many convs at 1/16 scale, dilated 4 and 1 in turn: a wider view (an
    item's seam or label beside its edges, a crowd around it) for little compute, since the
    1/16 map is small. 0 is the network of runs 1-7."""

    def __init__(self, width: int = 24, context: int = 0) -> None:
        super().__init__()
        c1, c2, c3, c4 = width // 2, width, width * 2, width * 3
        self.s2 = _conv(3, c1, 2)  # 1/2
        self.s4 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))  # 1/4
        self.s8 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3))  # 1/8
        wider = [_conv(c4, c4, dilation=4 if i % 2 == 0 else 1) for i in range(context)]
        self.s16 = nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4), _conv(c4, c4, dilation=2), *wider)
        self.up8 = _conv(c4 + c3, c3)
        self.up4 = _conv(c3 + c2, c2)
        self.heat = nn.Conv2d(c2, 1, 1)
        self.size = nn.Conv2d(c2, 2, 1)
        self.flag = nn.Linear(c4 * 2, 1)  # mean- and max-pooled: a hand is a local feature
        nn.init.constant_(self.heat.bias, -2.19)  # prior 0.1, as CenterNet does

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.s4(self.s2(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        u8 = self.up8(torch.cat([F.interpolate(f16, scale_factor=2.0, mode="nearest"), f8], 1))
        u4 = self.up4(torch.cat([F.interpolate(u8, scale_factor=2.0, mode="nearest"), f4], 1))
        flag = self.flag(torch.cat([f16.mean(dim=(2, 3)), f16.amax(dim=(2, 3))], 1))
        return self.heat(u4), self.size(u4), flag


# Test-time augmentation: the views the exported graph averages, each the image dims to flip
# (2 = rows, 3 = columns). Training flips both ways at random, so every one is a valid view.
TTA_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "hflip": ((), (3,)),
    "hvflip3": ((), (3,), (2,)),
    "hvflip4": ((), (3,), (2,), (2, 3)),
}


def _flip(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """`x` flipped along `dims`; its own inverse, so it maps a view's outputs back too."""
    return torch.flip(x, dims=list(dims)) if dims else x


class Exported(nn.Module):
    """The graph we ship: sigmoid + in-graph max-pool peak picking on top of the trained net.

    `tta` names the views (TTA_VIEWS) whose heatmaps, sizes and flags are averaged, each mapped
    back to the image's orientation: steadier peaks for a pass per view. The views go through the
    net as one batch, which onnxruntime runs faster than a pass each (4 views: 12.8 vs 16.4 ms on
    2 threads) for the same outputs. train.py keeps a view set only if it helps on the validation
    set; run 5 ships "hflip" (the image and its mirror).
    """

    def __init__(self, net: Counter, tta: str = "none") -> None:
        super().__init__()
        if tta not in TTA_VIEWS:
            raise ValueError(f"unknown TTA view set {tta!r}: one of {', '.join(TTA_VIEWS)}")
        self.net = net
        self.views = TTA_VIEWS[tta]

    def _mean_over_views(self, maps: torch.Tensor) -> torch.Tensor:
        """(views, C, h, w) -> (1, C, h, w): each view's map flipped back, then averaged."""
        restored = [_flip(maps[i : i + 1], dims) for i, dims in enumerate(self.views)]
        return reduce(torch.add, restored) / len(restored)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, size, flag = self.net(torch.cat([_flip(images, dims) for dims in self.views]))
        heat = self._mean_over_views(torch.sigmoid(logits))
        size = self._mean_over_views(torch.sigmoid(size))
        flag = torch.sigmoid(flag).mean(dim=0, keepdim=True)
        pooled = F.max_pool2d(heat, 3, stride=1, padding=1)
        peaks = heat * (pooled == heat).to(heat.dtype)
        return peaks, size, flag
