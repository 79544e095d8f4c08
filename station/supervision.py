"""What every device supervisor shares: its health, reported and logged only when it changes, and
the backoff between reconnect attempts."""

from __future__ import annotations

import logging
import random
import threading
from abc import ABC, abstractmethod
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


class Supervisor(ABC):
    """One device, one thread: connect, serve until the link is lost, back off with jitter,
    retry; health reported and logged only when it changes. Subclasses say how to connect and
    serve (`_connect_and_serve`); stop is prompt because every wait is on `_stop`."""

    def __init__(
        self,
        kind: str,
        name: str,
        port: str,
        backoff_s: tuple[float, float],
        clock: Clock,
        on_health: Callable[[DeviceHealth], None],
        log: logging.Logger,
        rng: random.Random | None = None,
    ) -> None:
        self._kind = kind
        self._name = name
        self._port_name = port
        self._backoff_s = backoff_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._health = HealthReporter(kind, name, port, clock, on_health, log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self._kind} {self._name} already started")
        self._health.set("connecting", f"opening {self._port_name}")
        thread_name = f"{self._kind.split()[0].lower()}-{self._name}"
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread and close the link; False if the thread did not end within timeout_s."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def health(self) -> DeviceHealth | None:
        return self._health.current

    @abstractmethod
    def _connect_and_serve(self) -> str:
        """Open the link and serve it until it is lost (return why) or until stop (return "")."""

    @abstractmethod
    def _on_reconnect(self) -> None:
        """Count a reconnect (each device keeps its own counters)."""

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            detail = self._connect_and_serve()
            if self._stop.is_set():
                return
            failures = 1 if self._health.state == "up" else failures + 1
            self._health.set("down", detail)
            self._on_reconnect()
            delay = reconnect_delay_s(failures, *self._backoff_s, self._rng)
            self._stop.wait(self._clock.real_seconds(delay))
