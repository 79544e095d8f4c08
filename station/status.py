"""A snapshot of the whole station at one moment, built by the daemon on its loop.

The packer's screen, the Station API, health checks and `packstation status` all read this one
shape, so they never disagree about what the station is doing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scale.weighing import WeighAssessment
from station.clock_offset import ClockOffset
from station.session import CartonView, Mode, SessionState


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    name: str  # "scale", "scanner handheld", "mqtt", "scale zero", ...
    state: str  # "up" | "down" | "connecting"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StationStatus:
    station_id: str
    site_id: str
    mode: Mode
    locale: str
    state: SessionState
    packer: str | None
    carton: CartonView | None
    devices: tuple[DeviceStatus, ...]
    weight: WeighAssessment
    outbox_depth: int
    uptime_s: float
    degraded: Mapping[str, str] | None = None  # the degraded mode in force (its event flag)
    clock: ClockOffset | None = None  # the last wall-clock offset measured (None: unknown)

    @property
    def devices_down(self) -> list[DeviceStatus]:
        return [d for d in self.devices if d.state != "up"]
