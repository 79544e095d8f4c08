"""Widen a trained counter without changing what it computes (Net2WiderNet, Chen et al. 2016).

Training a wider net from scratch costs hours on one CPU thread; a wider net that starts as the
trained narrow one (every new channel a copy of an old one, the copies' outgoing weights split so
the sum is unchanged) continues from the narrow net's accuracy and uses the new capacity as it
trains. The split is random, not halves, so the copies get different gradients and grow apart.
Imported only by training (PyTorch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vision.netdef import Counter


def width_of(state: dict[str, torch.Tensor]) -> int:
    """The width a Counter state dict was built with (its 1/4-scale channel count)."""
    return int(state["s4.0.0.weight"].shape[0])


def context_of(state: dict[str, torch.Tensor]) -> int:
    """The context convs a Counter state dict was built with (its 1/16-scale convs past 3)."""
    blocks = {key.split(".")[1] for key in state if key.startswith("s16.")}
    return len(blocks) - 3


def _mapping(old: int, new: int, rng: np.random.Generator) -> np.ndarray:
    """New channel -> the old channel it copies: the old ones in place, then random copies."""
    return np.concatenate([np.arange(old), rng.integers(0, old, new - old)])


def _shares(mapping: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per new channel, its share of its old channel's outgoing weight (copies sum to 1)."""
    raw = rng.uniform(0.25, 0.75, len(mapping))
    raw[np.bincount(mapping)[mapping] == 1] = 1.0
    totals = np.bincount(mapping, weights=raw)
    return raw / totals[mapping]


class _Channels:
    """An input to a layer: which old channel each new one copies and its outgoing share."""

    def __init__(self, mapping: np.ndarray, shares: np.ndarray) -> None:
        self.mapping, self.shares = mapping, shares

    @staticmethod
    def cat(parts: list[tuple[_Channels, int]]) -> _Channels:
        """Channels concatenated: each part with the old channel count before it."""
        return _Channels(
            np.concatenate([p.mapping + offset for p, offset in parts]),
            np.concatenate([p.shares for p, _ in parts]),
        )


def _conv_block(old: nn.Sequential, new: nn.Sequential, inp: _Channels, out: np.ndarray) -> None:
    _copy_conv(old[0], new[0], inp, out)
    bn_old, bn_new = old[1], new[1]
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn_new, name).data.copy_(getattr(bn_old, name).data[out])
    bn_new.num_batches_tracked.copy_(bn_old.num_batches_tracked)


def _copy_conv(old: nn.Module, new: nn.Module, inp: _Channels, out: np.ndarray) -> None:
    weight = old.weight.data[out][:, inp.mapping]
    shares = torch.as_tensor(inp.shares, dtype=weight.dtype).view(1, -1, *[1] * (weight.dim() - 2))
    new.weight.data.copy_(weight * shares)
    if getattr(old, "bias", None) is not None:
        new.bias.data.copy_(old.bias.data[out])


def widen(net: Counter, width: int, seed: int = 0) -> Counter:
    """A Counter of `width` that computes what `net` does (eval mode), ready to train on."""
    c1o, c2o = net.s2[0].out_channels, net.s4[0][0].out_channels
    c3o, c4o = net.s8[0][0].out_channels, net.s16[0][0].out_channels
    wide = Counter(width, context=len(net.s16) - 3)
    rng = np.random.default_rng(seed)
    sizes = {"c1": (c1o, width // 2), "c2": (c2o, width), "c3": (c3o, width * 2)}
    sizes["c4"] = (c4o, width * 3)
    maps = {k: _mapping(o, n, rng) for k, (o, n) in sizes.items()}
    chans = {k: _Channels(m, _shares(m, rng)) for k, m in maps.items()}
    rgb = _Channels(np.arange(3), np.ones(3))
    _conv_block(net.s2, wide.s2, rgb, maps["c1"])
    _conv_block(net.s4[0], wide.s4[0], chans["c1"], maps["c2"])
    _conv_block(net.s4[1], wide.s4[1], chans["c2"], maps["c2"])
    _conv_block(net.s8[0], wide.s8[0], chans["c2"], maps["c3"])
    _conv_block(net.s8[1], wide.s8[1], chans["c3"], maps["c3"])
    _conv_block(net.s16[0], wide.s16[0], chans["c3"], maps["c4"])
    for i in range(1, len(net.s16)):
        _conv_block(net.s16[i], wide.s16[i], chans["c4"], maps["c4"])
    up8_in = _Channels.cat([(chans["c4"], 0), (chans["c3"], c4o)])
    _conv_block(net.up8, wide.up8, up8_in, maps["c3"])
    up4_in = _Channels.cat([(chans["c3"], 0), (chans["c2"], c3o)])
    _conv_block(net.up4, wide.up4, up4_in, maps["c2"])
    for head in ("heat", "size"):
        outputs = np.arange(getattr(net, head).out_channels)
        _copy_conv(getattr(net, head), getattr(wide, head), chans["c2"], outputs)
    pooled = _Channels.cat([(chans["c4"], 0), (chans["c4"], c4o)])  # mean, then max
    _copy_conv(net.flag, wide.flag, pooled, np.arange(1))
    return wide
