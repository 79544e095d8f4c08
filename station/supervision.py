"""What every device supervisor shares: its health, reported and logged only when it changes, and
the backoff between reconnect attempts."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from station.clock import Clock

HealthState = Literal["connecting", "up", "down"]


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device: str
    state: HealthState
    detail: str
    since_monotonic: float
    port: str  # the port, URL or host:port the device is reached on


class HealthReporter:
    """One device's health. `set` reports and logs only a change of state, so a device that keeps
    failing to reconnect gives one line when it goes down and one when it comes back."""

    def __init__(
        self,
        kind: str,
        name: str,
        port: str,
        clock: Clock,
        on_health: Callable[[DeviceHealth], None],
        log: logging.Logger,
    ) -> None:
        self._kind = kind
        self._name = name
        self._port = port
        self._clock = clock
        self._on_health = on_health
        self._log = log
        self.current: DeviceHealth | None = None

    @property
    def state(self) -> HealthState | None:
        return None if self.current is None else self.current.state

    def set(self, state: HealthState, detail: str) -> None:
        if self.state == state:
            return
        self.current = DeviceHealth(self._name, state, detail, self._clock.monotonic(), self._port)
        level = logging.WARNING if state == "down" else logging.INFO
        self._log.log(
            level,
            "%s %s %s: %s",
            self._kind,
            self._name,
            state,
            detail,
            extra={"device": self._name, "port": self._port, "health": state},
        )
        self._on_health(self.current)


def reconnect_delay_s(failures: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: never below `min_s`, never above `max_s`.

    Jitter keeps a room full of stations from hammering one converter in lockstep.
    """
    ceiling = min(max_s, min_s * 2 ** max(0, failures - 1))
    return rng.uniform(max(min_s, ceiling / 2), ceiling)
