"""An ActuatorBank as the daemon builds it, with health reports collected instead of fed."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from station.actuators.config import ActuatorConfig
from station.actuators.drivers import OutputDriver
from station.actuators.worker import ActuatorBank
from station.clock import SystemClock


class Health:
    """Every (device, up, detail) the bank reported, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reports: list[tuple[str, bool, str]] = []

    def __call__(self, device: str, up: bool, detail: str) -> None:
        with self._lock:
            self.reports.append((device, up, detail))

    def last(self) -> tuple[str, bool, str] | None:
        with self._lock:
            return self.reports[-1] if self.reports else None

    def is_up(self) -> bool:
        last = self.last()
        return last is not None and last[1]

    def is_down(self) -> bool:
        last = self.last()
        return last is not None and not last[1]


def make_bank(
    configs: list[ActuatorConfig], drivers: Mapping[str, OutputDriver] | None = None
) -> tuple[ActuatorBank, Health]:
    health = Health()
    bank = ActuatorBank(configs, SystemClock(), health, lambda work: work(), drivers)
    return bank, health
