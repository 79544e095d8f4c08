"""The stack light the packer sees: its colours and the `Light` interface. The station drives it
through `station.actuators` (Modbus, relay board or simulated, which also logs every change);
`RecordingLight` keeps the changes in memory for tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class LightColor(StrEnum):
    OFF = "off"
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


@dataclass(frozen=True, slots=True)
class LightState:
    color: LightColor
    buzzer: bool
    at_monotonic: float


class Light(Protocol):
    def set(self, color: LightColor, buzzer: bool, at_monotonic: float) -> None:
        """Show `color`; raise OSError when the output cannot be driven."""


class RecordingLight:
    """Keeps every change with its time (tests, benchmarks); the actuators log them."""

    def __init__(self) -> None:
        self.changes: list[LightState] = []

    @property
    def current(self) -> LightState | None:
        return self.changes[-1] if self.changes else None

    def set(self, color: LightColor, buzzer: bool, at_monotonic: float) -> None:
        if self.current and (self.current.color, self.current.buzzer) == (color, buzzer):
            return
        self.changes.append(LightState(color, buzzer, at_monotonic))
