"""The stack light the packer sees. The skeleton drives a recorded, logged light; Modbus and relay
drivers plug in behind the same interface (see issue 5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger("packstation.light")


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
    """A simulated light: keeps every change (for tests, the demo and benchmarks) and logs it."""

    def __init__(self) -> None:
        self.changes: list[LightState] = []

    @property
    def current(self) -> LightState | None:
        return self.changes[-1] if self.changes else None

    def set(self, color: LightColor, buzzer: bool, at_monotonic: float) -> None:
        if self.current and (self.current.color, self.current.buzzer) == (color, buzzer):
            return
        self.changes.append(LightState(color, buzzer, at_monotonic))
        log.info("light set", extra={"color": color.value, "buzzer": buzzer})
