"""The insertion channel explains the steps while the carton is packed (each step and scan as it
comes, on the real pty scale and the weight channel's reading path), so the checklist's ticks are
ready when the screen first asks and the close only adds the last steps."""

from __future__ import annotations

import asyncio
import time

from simulators.rig import EXAMPLE_CATALOG
from simulators.scale_sim import ScaleSimulator
from station.catalog_file import load_catalog
from station.channels.base import ChannelContext
from station.channels.insertion import InsertionChannel
from station.channels.weight import WeightChannel
from station.clock import SystemClock
from station.domain import Manifest, ManifestLine
from station.scan_check import UnitScan
from station.session import CartonView, FetchManifest
from station.weight_check import WeightCheckConfig
from tests.core.pty_scale import fast_scale, place

CATALOG = load_catalog(EXAMPLE_CATALOG)
BOX = CATALOG.boxes["BOX-S"]
MANIFEST = Manifest(
    order_id="ORD-9",
    carton_id="C1",
    version=1,
    lines=(
        ManifestLine(line_id="1", sku="MUG-BLUE", quantity=1),
        ManifestLine(line_id="2", sku="CABLE-USBC-1M", quantity=2),
    ),
)


def _view(scans: list[UnitScan]) -> CartonView:
    return CartonView(
        order_id="ORD-9",
        carton_id="C1",
        manifest=MANIFEST,
        box=BOX,
        attempts=0,
        scanned_units={},
        expected_units={"MUG-BLUE": 1, "CABLE-USBC-1M": 2},
        last_verdict=None,
        unit_scans=tuple(scans),
    )


async def _pack(scale: ScaleSimulator) -> tuple[dict[str, int], dict[str, int]]:
    """Box, mug, one cable; then a second cable scanned with no step yet. Returns the ticks
    the screen's first question got after the steps, and after the late scan."""
    loop = asyncio.get_running_loop()
    scans: list[UnitScan] = []
    context = ChannelContext(
        clock=SystemClock(),
        catalog=CATALOG,
        call_soon=lambda work: loop.call_soon_threadsafe(work),
        report_health=lambda _device, _up, _detail: None,
        is_down=lambda _device: False,
        is_idle=lambda: False,
        open_carton=lambda: _view(scans),
    )
    weight = WeightChannel(fast_scale(scale), WeightCheckConfig(), context)
    insertion = InsertionChannel(weight, WeightCheckConfig(), 0.9, context)
    insertion.on_effect(FetchManifest("ORD-9", "C1"))
    weight.start()
    try:
        for grams in (180.0, 592.0, 630.0):  # the box, the mug, a cable
            await place(scale, weight, grams)
            await asyncio.sleep(0.4)  # the step's explanation ran in its thread
        first_asked = dict(insertion.live_units(_view(scans)))
        scans.append(UnitScan("CABLE-USBC-1M", 1, time.monotonic()))
        insertion.live_units(_view(scans))  # the scan came: explained again
        await asyncio.sleep(0.5)
        after_scan = dict(insertion.live_units(_view(scans)))
    finally:
        weight.stop()
    return first_asked, after_scan


def test_steps_are_explained_as_they_come_not_when_the_screen_asks() -> None:
    scale = ScaleSimulator("mtsics", tcp_port=None, seed=3)
    scale.start()
    try:
        first_asked, after_scan = asyncio.run(_pack(scale))
    finally:
        scale.stop()
    assert first_asked == {"MUG-BLUE": 1, "CABLE-USBC-1M": 1}
    assert after_scan == first_asked  # a scan in hand is no step: nothing more went in
