"""Replaceable clocks.

Every interval in the station is measured on `Clock.monotonic()`; every timestamp that leaves the
station (events, evidence) comes from `Clock.now_utc()`. Simulations swap in a `ScaledClock` so a
shift of packing runs in seconds, and unit tests use `ManualClock` to step time by hand.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; only differences are meaningful."""

    def now_utc(self) -> datetime:
        """Aware UTC wall-clock time, for timestamps that leave the station."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds `seconds` of this clock's time take (for blocking timeouts)."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_utc(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def real_seconds(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """Runs `speed` times faster than real time; wall time advances at the same rate."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._wall0 = datetime.now(UTC)

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self.speed

    def now_utc(self) -> datetime:
        elapsed = (time.monotonic() - self._mono0) * self.speed
        return self._wall0 + timedelta(seconds=elapsed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def real_seconds(self, seconds: float) -> float:
        return seconds / self.speed


class ManualClock:
    """A clock that moves only when told to; `sleep` advances it immediately."""

    def __init__(self, start_monotonic: float = 1000.0, start_utc: datetime | None = None) -> None:
        self._mono = start_monotonic
        self._wall = start_utc or datetime(2026, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    def set_wall(self, utc: datetime) -> None:
        """Step the wall clock alone, either way (NTP correcting it, an operator setting it)."""
        self._wall = utc

    def monotonic(self) -> float:
        return self._mono

    def now_utc(self) -> datetime:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def real_seconds(self, seconds: float) -> float:
        return 0.0
