"""The weight channel: the scale's readings, the settled weight at close, and the empty-platter
check between parcels."""

from __future__ import annotations

import asyncio
import contextlib

from scale.config import ScaleConfigModel
from scale.device import DeviceHealth, ScaleDevice
from scale.readings import WeightReading
from scale.weighing import StabilityTracker, WeighAssessment, WeighState, scale_error_g
from station.channels.base import ChannelContext, EvidenceChannel
from station.domain import expected_units
from station.session import CollectEvidence, WeightInfo
from station.verification import ChannelReport
from station.weight_check import ScaleState, WeightCheckConfig, WeightMeasurement, evaluate_weight

SCALE = "scale"
ZERO = "scale zero"
_SETTLE_POLL_S = 0.05  # wake at least this often (real time) while waiting for a settled weight

_SCALE_STATES: dict[WeighState, ScaleState] = {
    WeighState.NO_READING: ScaleState.STALE,
    WeighState.STALE: ScaleState.STALE,
    WeighState.DEVICE_FAULT: ScaleState.DOWN,
    WeighState.OVERLOAD: ScaleState.OVER_CAPACITY,
    WeighState.UNDERLOAD: ScaleState.UNDER_RANGE,
    WeighState.MOTION: ScaleState.UNSTABLE,
    WeighState.SETTLING: ScaleState.UNSTABLE,
    WeighState.SETTLED: ScaleState.SETTLED,
}


class WeightChannel(EvidenceChannel):
    name = "weight"

    def __init__(
        self, scale: ScaleConfigModel, check: WeightCheckConfig, context: ChannelContext
    ) -> None:
        self.scale_config = scale
        self.check_config = check
        self._context = context
        self.tracker = StabilityTracker.from_config(scale)
        self.scale = ScaleDevice(
            scale,
            on_reading=lambda reading, at: context.call_soon(lambda: self._on_reading(reading, at)),
            on_health=self._on_scale_health,
            clock=context.clock,
        )
        self._changed = asyncio.Event()
        boxes = context.catalog.boxes.values()
        self._lightest_box_g = min((b.tare_g for b in boxes), default=0.0)

    @property
    def devices(self) -> tuple[str, ...]:
        return (SCALE,)

    def start(self) -> None:
        self.scale.start()

    def stop(self) -> None:
        self.scale.stop()

    def assessment(self) -> WeighAssessment:
        return self.tracker.assess(self._context.clock.monotonic())

    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        self.scale.request_reading()
        assessment = await self._settled_or_deadline(deadline, requested_at)
        catalog = self._context.catalog
        return evaluate_weight(
            expected_units(request.manifest, catalog),
            catalog,
            request.box,
            self._measurement(assessment),
            self.check_config,
        )

    async def final_weight_g(self, requested_at: float, deadline: float) -> float | None:
        """The settled gross weight from a reading taken after `requested_at` (the label scan),
        or None when the scale cannot give one by `deadline` (down, drifting, never settled)."""
        self.scale.request_reading()
        measurement = self._measurement(await self._settled_or_deadline(deadline, requested_at))
        return measurement.gross_g if measurement.state is ScaleState.SETTLED else None

    # -- readings and health (on the loop) --------------------------------------------------------

    def _on_scale_health(self, health: DeviceHealth) -> None:
        if health.state != "connecting":  # the first connect is neither a fault nor a recovery
            up, detail = health.state == "up", health.detail
            self._context.call_soon(lambda: self._context.report_health(SCALE, up, detail))

    def _on_reading(self, reading: WeightReading, at: float) -> None:
        self.tracker.observe(reading, at)
        self._changed.set()
        self._changed = asyncio.Event()
        if self._context.is_idle():
            self._check_zero(at)

    def _check_zero(self, now: float) -> None:
        """Between parcels the empty platter must read near zero; drift is a scale fault."""
        settled = self.tracker.settled(now)
        if settled is None:
            return
        band = self.scale_config.zero_band_g
        # A settled weight far above the band is a box put down early, not drift.
        drifting = band < abs(settled) < max(band * 2, self._lightest_box_g / 2)
        down = self._context.is_down(ZERO)
        if drifting and not down:
            detail = f"empty platter reads {settled:.1f} g (band ±{band:g} g): zero the scale"
            self._context.report_health(ZERO, False, detail)
        elif abs(settled) <= band and down:
            self._context.report_health(ZERO, True, "")

    # -- the decisive weight ---------------------------------------------------------------------

    async def _settled_or_deadline(self, deadline: float, requested_at: float) -> WeighAssessment:
        """The settled weight, counted only once a reading taken after the close request agrees:
        a weight that settled before the close says nothing about an item taken out since, and a
        scale that went silent still looks settled until its readings turn stale."""
        clock = self._context.clock
        while True:
            assessment = self.tracker.assess(clock.monotonic())
            remaining = deadline - clock.monotonic()
            latest_at = self.tracker.latest_at
            fresh = latest_at is not None and latest_at > requested_at
            if assessment.state is WeighState.SETTLED and fresh:
                return assessment
            if remaining <= 0 or self._context.is_down(SCALE):
                if assessment.state is WeighState.SETTLED:  # but no reading since the close
                    return WeighAssessment(
                        WeighState.STALE, assessment.grams, None, 0.0, "no reading since close"
                    )
                return assessment
            wait = min(clock.real_seconds(remaining), _SETTLE_POLL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def _measurement(self, assessment: WeighAssessment) -> WeightMeasurement:
        if self._context.is_down(SCALE):
            return WeightMeasurement(ScaleState.DOWN)
        if self._context.is_down(ZERO):  # an offset eats into the tolerance: fail closed
            return WeightMeasurement(ScaleState.ZERO_DRIFT)
        state = _SCALE_STATES[assessment.state]
        if state is not ScaleState.SETTLED or assessment.settled_grams is None:
            return WeightMeasurement(state if state is not ScaleState.SETTLED else ScaleState.STALE)
        grams = assessment.settled_grams
        error = scale_error_g(abs(grams), self.scale_config.division_g)
        return WeightMeasurement(ScaleState.SETTLED, gross_g=grams, scale_error_g=error)


def weight_info(report: ChannelReport) -> WeightInfo:
    """The weight figures the packer's screen and the events show."""
    m = report.measurements
    return WeightInfo(m.get("measured_g"), m.get("expected_g"), m.get("tolerance_g"))
