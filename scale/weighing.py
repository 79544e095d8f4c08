"""Pure weighing logic: when a weight counts, software tare, empty-platter zero check, OIML MPE.

Everything here is fed readings with their monotonic timestamps and never looks at a clock, so a
test can replay any sequence of events exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from scale.config import ScaleConfigModel
from scale.readings import ScaleStatus, WeightReading

_DEVICE_FAULTS = {ScaleStatus.ZERO_ERROR, ScaleStatus.DEVICE_ERROR}


class WeighState(StrEnum):
    NO_READING = "no_reading"
    STALE = "stale"
    DEVICE_FAULT = "device_fault"
    OVERLOAD = "overload"
    UNDERLOAD = "underload"
    MOTION = "motion"  # not yet still for the stability window
    SETTLING = "settling"  # still, waiting out the hands-off settle window
    SETTLED = "settled"


@dataclass(frozen=True, slots=True)
class WeighAssessment:
    state: WeighState
    grams: float | None  # the latest gross weight, for display only
    settled_grams: float | None  # the decisive weight; set only when SETTLED
    still_for_s: float  # how long the weight has stayed within the motion band
    detail: str


@dataclass(frozen=True, slots=True)
class _Sample:
    ts: float
    grams: float | None
    still: bool  # the device calls it stable and the status is OK


class StabilityTracker:
    """Decides when a weight counts: device stable flag AND a software no-motion band.

    The weight must stay within `band_g` (max - min) for `stability_window_s` to be still, and
    for a further `settle_window_s` (hands off the parcel) to be settled. Any reading outside the
    band, or any reading the device marks as moving, restarts both windows.
    """

    def __init__(
        self,
        *,
        band_g: float,
        stability_window_s: float,
        settle_window_s: float,
        capacity_g: float,
        stale_after_s: float,
    ) -> None:
        self.band_g = band_g
        self.stability_window_s = stability_window_s
        self.settle_window_s = settle_window_s
        self.capacity_g = capacity_g
        self.stale_after_s = stale_after_s
        self._samples: deque[_Sample] = deque()
        self._latest: WeightReading | None = None
        self._latest_ts = 0.0

    @classmethod
    def from_config(cls, config: ScaleConfigModel) -> StabilityTracker:
        return cls(
            band_g=config.motion_band_g,
            stability_window_s=config.stability_window_s,
            settle_window_s=config.settle_window_s,
            capacity_g=config.capacity_g,
            stale_after_s=config.stale_after_s,
        )

    def reset(self) -> None:
        """Forget everything (a new parcel is coming)."""
        self._samples.clear()
        self._latest = None

    def observe(self, reading: WeightReading, ts: float) -> None:
        # A refused command says nothing about the weight; silence from it shows up as stale.
        if reading.status is ScaleStatus.COMMAND_ERROR:
            return
        self._latest, self._latest_ts = reading, ts
        still = reading.device_stable and reading.status is ScaleStatus.OK
        self._samples.append(_Sample(ts, reading.grams, still))
        self._forget_older_than(ts - self.stability_window_s - self.settle_window_s)

    @property
    def latest_at(self) -> float | None:
        """When the newest usable reading was taken (None before the first one): a decision
        that must reflect the platter at a moment needs a reading taken after that moment."""
        return None if self._latest is None else self._latest_ts

    def settled(self, now: float) -> float | None:
        """The decisive weight in grams, or None while it cannot be trusted."""
        return self.assess(now).settled_grams

    def assess(self, now: float) -> WeighAssessment:
        latest = self._latest
        if latest is None:
            return WeighAssessment(WeighState.NO_READING, None, None, 0.0, "no reading yet")
        grams = latest.grams
        age = now - self._latest_ts
        if age > self.stale_after_s:
            return WeighAssessment(
                WeighState.STALE, grams, None, 0.0, f"last reading {age:.1f} s ago"
            )
        problem = self._range_problem(latest)
        if problem is not None:
            state, detail = problem
            return WeighAssessment(state, grams, None, 0.0, detail)
        return self._stillness(grams)

    def _range_problem(self, latest: WeightReading) -> tuple[WeighState, str] | None:
        if latest.status in _DEVICE_FAULTS:
            return WeighState.DEVICE_FAULT, f"scale reports {latest.status}"
        grams = latest.grams
        if latest.status is ScaleStatus.OVERLOAD or (grams is not None and grams > self.capacity_g):
            return WeighState.OVERLOAD, f"over capacity ({self.capacity_g:g} g)"
        if latest.status is ScaleStatus.UNDERLOAD or (grams is not None and grams < -self.band_g):
            return WeighState.UNDERLOAD, "under range: below zero"
        return None

    def _stillness(self, grams: float | None) -> WeighAssessment:
        if grams is None:
            return WeighAssessment(WeighState.MOTION, None, None, 0.0, "status only, no weight")
        still_run = self._still_run()
        if not still_run:
            return WeighAssessment(WeighState.MOTION, grams, None, 0.0, "weight moving")
        still_for = self._latest_ts - still_run[0].ts
        if still_for < self.stability_window_s:
            return WeighAssessment(WeighState.MOTION, grams, None, still_for, "weight moving")
        if still_for < self.stability_window_s + self.settle_window_s:
            return WeighAssessment(WeighState.SETTLING, grams, None, still_for, "settling")
        # Average the settle window: the decision rests on more than one noisy reading.
        settle_start = self._latest_ts - self.settle_window_s
        window = [s.grams for s in still_run if s.ts >= settle_start and s.grams is not None]
        decisive = sum(window) / len(window)
        return WeighAssessment(WeighState.SETTLED, grams, decisive, still_for, "settled")

    def _still_run(self) -> list[_Sample]:
        """The newest samples, oldest first, that are all still and together within the band."""
        run: list[_Sample] = []
        low, high = float("inf"), float("-inf")
        for sample in reversed(self._samples):
            if not sample.still or sample.grams is None:
                break
            if run and run[0].ts - sample.ts > self.stale_after_s:
                break  # a gap in the readings: nobody saw the weight in between
            low, high = min(low, sample.grams), max(high, sample.grams)
            if high - low > self.band_g:
                break
            run.insert(0, sample)
        return run

    def _forget_older_than(self, horizon: float) -> None:
        # Keep the newest sample at or before the horizon: it proves stillness reached back to it.
        while len(self._samples) > 1 and self._samples[1].ts <= horizon:
            self._samples.popleft()


@dataclass(frozen=True, slots=True)
class SoftwareTare:
    """Tare kept by us, never by the scale: a power loss or reset would silently clear that one."""

    tare_g: float
    source: Literal["box_type", "captured"]

    def __post_init__(self) -> None:
        if self.tare_g < 0:
            raise ValueError(f"a tare cannot be negative ({self.tare_g} g)")

    @classmethod
    def from_box_type(cls, box_tare_g: float) -> SoftwareTare:
        return cls(box_tare_g, "box_type")

    @classmethod
    def captured(cls, settled_empty_box_g: float) -> SoftwareTare:
        return cls(settled_empty_box_g, "captured")

    def net_g(self, gross_g: float) -> float:
        return gross_g - self.tare_g


@dataclass(frozen=True, slots=True)
class ZeroDrift:
    grams: float
    zero_band_g: float

    @property
    def detail(self) -> str:
        return (
            f"empty platter reads {self.grams:+.1f} g, outside +-{self.zero_band_g:g} g: "
            "clear the platter and zero the scale"
        )


class EmptyPlatterCheck:
    """Between parcels the settled empty platter must read near zero, else weights are offset."""

    def __init__(self, zero_band_g: float) -> None:
        self.zero_band_g = zero_band_g

    def check(self, settled_empty_g: float) -> ZeroDrift | None:
        if abs(settled_empty_g) <= self.zero_band_g:
            return None
        return ZeroDrift(settled_empty_g, self.zero_band_g)


def scale_error_g(load_g: float, division_g: float) -> float:
    """OIML R51 class Y(a) maximum permissible error at `load_g` for verification interval e.

    +-1 e up to 500 e, +-1.5 e up to 2000 e, +-2 e above (the class ends at 10000 e; heavier
    loads keep the largest error rather than failing the caller).
    """
    if division_g <= 0:
        raise ValueError("division_g must be positive")
    divisions = abs(load_g) / division_g
    if divisions <= 500:
        return division_g
    if divisions <= 2000:
        return 1.5 * division_g
    return 2.0 * division_g
