"""The weight channel's settled-step hook (what the camera takes its insertion frames on), on the
real pty scale simulator and the channel's own reading path."""

from __future__ import annotations

import asyncio
import time

from simulators.rig import EXAMPLE_CATALOG
from simulators.scale_sim import ScaleSimulator
from station.catalog_file import load_catalog
from station.channels.base import ChannelContext
from station.channels.weight import WeightChannel, WeightStep
from station.clock import SystemClock
from station.weight_check import WeightCheckConfig
from tests.core.pty_scale import fast_scale, place


async def _steps_for(scale: ScaleSimulator, placements: list[float]) -> list[WeightStep]:
    loop = asyncio.get_running_loop()
    context = ChannelContext(
        clock=SystemClock(),
        catalog=load_catalog(EXAMPLE_CATALOG),
        call_soon=lambda work: loop.call_soon_threadsafe(work),
        report_health=lambda _device, _up, _detail: None,
        is_down=lambda _device: False,
        is_idle=lambda: False,
    )
    channel = WeightChannel(fast_scale(scale), WeightCheckConfig(), context)
    steps: list[WeightStep] = []

    def broken(_step: WeightStep) -> None:
        raise RuntimeError("a listener's bug")

    channel.on_settled_step(broken)  # logged; the next listener still hears every step
    channel.on_settled_step(steps.append)
    channel.start()
    try:
        for grams in placements:
            await place(scale, channel, grams)
    finally:
        channel.stop()
    return steps


def test_each_settled_level_is_one_step_and_drift_inside_the_band_is_none() -> None:
    scale = ScaleSimulator("mtsics", tcp_port=None, seed=3)
    scale.start()
    try:
        started = time.monotonic()
        # A box, an item, 0.6 g of drift (band: 1 division = 1 g), an item out, the carton off.
        steps = asyncio.run(_steps_for(scale, [250.0, 662.0, 662.6, 400.0, 0.0]))
    finally:
        scale.stop()
    moves = [(round(s.from_g), round(s.to_g)) for s in steps]
    assert moves == [(0, 250), (250, 662), (662, 400), (400, 0)]
    assert [s.delta_g > 0 for s in steps] == [True, True, False, False]
    assert all(started < s.at < time.monotonic() for s in steps)
