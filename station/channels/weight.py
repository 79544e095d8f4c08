"""The weight channel: the scale's readings, the settled weight at close, and the empty-platter
check between parcels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping

from scale.config import ScaleConfigModel
from scale.device import DeviceHealth, ScaleDevice
from scale.readings import WeightReading
from scale.weighing import StabilityTracker, WeighAssessment, WeighState, scale_error_g
from station.channels.base import ChannelContext, EvidenceChannel
from station.domain import expected_units
from station.insertion_check import WeightStep
from station.learning.service import LearnedWeights
from station.session import CollectEvidence, WeightInfo
from station.verification import ChannelReport
from station.weight_check import (
    RecentCartons,
    ScaleState,
    WeightCheckConfig,
    WeightMeasurement,
    evaluate_weight,
)

log = logging.getLogger("packstation.weight")

SCALE = "scale"
ZERO = "scale zero"
_SETTLE_POLL_S = 0.05  # wake at least this often (real time) while waiting for a settled weight
# The evidence record's weight trace: readings from this long before the close request until the
# decision, at most this many (the newest): the platter's story around the close, a few kB.
TRACE_BEFORE_CLOSE_S = 3.0
TRACE_MAX_READINGS = 200

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
        # The last settled level steps are measured from; a scale is zeroed empty, so the first
        # box put down is a step even if the empty platter never had time to settle.
        self._level_g = 0.0
        self._step_listeners: list[Callable[[WeightStep], None]] = []
        # Learned weights (station/learning): which unit weights and tare the check measures
        # against; None: the catalog's, as loaded.
        self.learned: LearnedWeights | None = None
        self._recent: deque[tuple[float, WeightReading]] = deque(maxlen=TRACE_MAX_READINGS)
        # When the platter last settled empty (in the zero band), on the monotonic clock.
        self.emptied_at: float | None = None
        self._observed: dict[str, object] = {}
        self._recent_cartons = RecentCartons(check.recent_cartons_as_extras)
        boxes = context.catalog.boxes.values()
        self._lightest_box_g = min((b.tare_g for b in boxes), default=0.0)

    @property
    def devices(self) -> tuple[str, ...]:
        return (SCALE,)

    def start(self) -> None:
        self.scale.start()

    def stop(self) -> None:
        self.scale.stop()

    def on_settled_step(self, listener: Callable[[WeightStep], None]) -> None:
        """Call `listener` (on the loop) each time the weight settles at a level more than the
        scale's motion band away from the last settled level: one call per insertion or removal,
        e.g. for the camera to take that insertion's frame."""
        self._step_listeners.append(listener)

    @property
    def level_g(self) -> float:
        """The last settled level steps are measured from."""
        return self._level_g

    def settled_at_level(self) -> bool:
        """Whether the platter is settled where the last step left it: nothing has been set
        down or lifted since (beyond the motion band)."""
        settled = self.assessment().settled_grams
        band = self.scale_config.motion_band_g
        return settled is not None and abs(settled - self._level_g) <= band

    def assessment(self) -> WeighAssessment:
        return self.tracker.assess(self._context.clock.monotonic())

    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        self.scale.request_reading()
        assessment = await self.wait_settled(deadline, requested_at)
        self._observed = {"trace": self._trace(requested_at), "assessment": assessment.state.value}
        units = expected_units(request.manifest, self._context.catalog)
        carton = request.manifest.key
        recent = self._recent_cartons.skus_besides(carton)
        self._recent_cartons.remember(carton, units)
        # The evidence says which SKUs of other orders a surplus could be explained by.
        self._observed["recent_cartons_skus"] = sorted(recent)
        measurement = self._measurement(assessment)
        if self.learned is None:
            catalog, box, provenance = self._context.catalog, request.box, None
        else:  # the usual extras weighed as learned too
            usual = [*units, *recent, *self.check_config.common_extras]
            weights = self.learned.effective(usual, request.box)
            catalog, box, provenance = weights.catalog, weights.box, weights.provenance
        return evaluate_weight(
            units, catalog, box, measurement, self.check_config, provenance, recent
        )

    async def settled_weight(self, timeout_s: float) -> WeightMeasurement:
        """The settled weight on the platter now (a reading taken after this call), for the
        weigh-one-unit flow; fails as the close does (unsettled, stale, scale down)."""
        requested_at = self._context.clock.monotonic()
        self.scale.request_reading()
        assessment = await self.wait_settled(requested_at + timeout_s, requested_at)
        return self._measurement(assessment)

    def observations(self) -> Mapping[str, object]:
        return self._observed

    def _trace(self, requested_at: float) -> list[dict[str, object]]:
        """Readings around the close; `t_s` is seconds after the close request (monotonic)."""
        since = requested_at - TRACE_BEFORE_CLOSE_S
        return [
            {
                "t_s": round(at - requested_at, 3),
                "grams": reading.grams,
                "stable": reading.device_stable,
                "status": reading.status.value,
            }
            for at, reading in self._recent
            if at >= since
        ]

    async def final_weight_g(self, requested_at: float, deadline: float) -> float | None:
        """The settled gross weight from a reading taken after `requested_at` (the label scan),
        or None when the scale cannot give one by `deadline` (down, drifting, never settled)."""
        self.scale.request_reading()
        measurement = self._measurement(await self.wait_settled(deadline, requested_at))
        return measurement.gross_g if measurement.state is ScaleState.SETTLED else None

    # -- readings and health (on the loop) --------------------------------------------------------

    def _on_scale_health(self, health: DeviceHealth) -> None:
        if health.state != "connecting":  # the first connect is neither a fault nor a recovery
            up, detail = health.state == "up", health.detail
            self._context.call_soon(lambda: self._context.report_health(SCALE, up, detail))

    def _on_reading(self, reading: WeightReading, at: float) -> None:
        self.tracker.observe(reading, at)
        self._recent.append((at, reading))
        self._changed.set()
        self._changed = asyncio.Event()
        if self._step_listeners:
            self._check_step(at)
        if self._context.is_idle():
            self._check_zero(at)
        settled = self.tracker.settled(at)
        if settled is not None and abs(settled) <= self.scale_config.zero_band_g:
            self.emptied_at = at

    def _check_step(self, now: float) -> None:
        settled = self.tracker.settled(now)
        if settled is None:
            return
        level = self._level_g
        if abs(settled - level) <= self.scale_config.motion_band_g:
            return  # drift inside the band moves nothing
        self._level_g = settled
        step = WeightStep(level, settled, now)
        for listener in self._step_listeners:
            try:
                listener(step)
            except Exception:  # a listener's bug must not stop the scale's readings
                log.exception("weight step listener failed")

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

    async def wait_settled(self, deadline: float, requested_at: float) -> WeighAssessment:
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
