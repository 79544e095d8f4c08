"""The weight channel on the real pty scale simulator, with short windows, for channel tests."""

from __future__ import annotations

import asyncio
import time

from scale.config import MtSicsScaleConfig
from simulators.scale_sim import ScaleSimulator
from station.channels.weight import WeightChannel


def fast_scale(scale: ScaleSimulator) -> MtSicsScaleConfig:
    """A MT-SICS scale on the simulator's pty, polled fast, settling in half a second."""
    return MtSicsScaleConfig(
        protocol="mtsics",
        port=scale.pty_path,
        poll_interval_s=0.05,
        stability_window_s=0.3,
        settle_window_s=0.2,
        division_g=1.0,
        capacity_g=15000.0,
        stale_after_s=2.0,
    )


async def place(scale: ScaleSimulator, channel: WeightChannel, grams: float) -> None:
    """Put the platter at `grams` and wait until the channel has settled there and the step's
    listeners ran on this loop."""
    scale.set_weight(grams, motion_s=0.2)
    await asyncio.sleep(0.2)  # the motion starts
    deadline = time.monotonic() + 10
    while not _settled_at(channel, grams):  # motion, stability and settle windows
        assert time.monotonic() < deadline, channel.assessment()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)


def _settled_at(channel: WeightChannel, grams: float) -> bool:
    settled = channel.assessment().settled_grams
    return settled is not None and abs(settled - grams) < 0.5
