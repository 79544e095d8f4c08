"""One worker thread per output device, and the bank the daemon drives them through.

The loop never waits on a device: `ActuatorBank.set_light` / `set_route` record the wanted state,
bump a generation and wake the workers. Each worker writes what changed, confirms it (the driver
raises otherwise) and records the generation it confirmed; a write that fails takes the device
down (a device fault, so no carton passes) and the worker reconnects with backoff, then writes
the whole wanted state again. `settled` tells whether every device confirmed the latest state:
the label permission waits for it, so a PASS is never acted on before the light and the diverter
show it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping

from station.actuators.config import ActuatorConfig
from station.actuators.drivers import ActuatorError, OutputDriver, make_driver
from station.actuators.outputs import Route, StationOutputs
from station.clock import Clock
from station.light import LightColor
from station.supervision import DeviceHealth, Supervisor

log = logging.getLogger("packstation.actuators")
_LATENCY_SAMPLES = 1_000


class ActuatorWorker(Supervisor):
    """Owns one output device in its own thread; see the module docstring."""

    def __init__(
        self,
        config: ActuatorConfig,
        driver: OutputDriver,
        clock: Clock,
        on_health: Callable[[DeviceHealth], None],
        rng: random.Random | None = None,
    ) -> None:
        backoff = (config.reconnect_min_s, config.reconnect_max_s)
        super().__init__("actuator", config.name, config.port, backoff, clock, on_health, log, rng)
        self.config = config
        self.driver = driver
        self._roles = config.outputs.addresses()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._wanted = self._states(StationOutputs())
        self._wanted_generation = 0
        self.confirmed_generation = -1  # read by the loop; an int assignment is atomic
        self.reconnects = 0
        self.write_latencies_s: deque[float] = deque(maxlen=_LATENCY_SAMPLES)

    @property
    def device(self) -> str:
        return f"actuator {self.config.name}"

    def request(self, outputs: StationOutputs, generation: int) -> None:
        """Want `outputs` from now on (any thread); the worker writes it soon."""
        with self._lock:
            self._wanted = self._states(outputs)
            self._wanted_generation = generation
        self._wake.set()

    def _states(self, outputs: StationOutputs) -> dict[int, bool]:
        by_role = outputs.role_states(self.config.diverter_on_means)
        return {address: by_role[role] for role, address in self._roles.items()}

    def stop(self, timeout_s: float = 2.0) -> bool:
        self._stop.set()
        self._wake.set()  # the serve loop waits on `_wake`, not on `_stop`
        return super().stop(timeout_s)

    def _on_reconnect(self) -> None:
        self.reconnects += 1

    def _connect_and_serve(self) -> str:
        try:
            self.driver.open()
        except ActuatorError as exc:
            return str(exc)
        try:
            return self._serve()
        except ActuatorError as exc:
            return str(exc)
        finally:
            if self._stop.is_set():
                self._fail_safe()
            self.driver.close()

    def _serve(self) -> str:
        confirmed: dict[int, bool] = {}  # nothing is known about a device just (re)opened
        refresh_s = self._clock.real_seconds(self.config.refresh_s)
        while not self._stop.is_set():
            self._wake.clear()
            with self._lock:
                wanted, generation = dict(self._wanted), self._wanted_generation
            changed = {a: on for a, on in wanted.items() if confirmed.get(a) != on}
            if changed:
                started = self._clock.monotonic()
                self.driver.write(changed)
                self.write_latencies_s.append(self._clock.monotonic() - started)
                confirmed.update(changed)
            self.confirmed_generation = generation
            self._health.set("up", f"outputs confirmed on {self._port_name}")
            if not self._wake.wait(refresh_s):
                confirmed = {}  # nothing changed for a while: write and confirm everything again
        return ""

    def _fail_safe(self) -> None:
        """On stop, everything OFF: light dark, diverter in its unpowered (fail-safe) position."""
        try:
            self.driver.write(dict.fromkeys(self._roles.values(), False))
        except ActuatorError as exc:
            log.warning("outputs not switched off at stop: %s", exc, extra={"device": self.device})


class ActuatorBank:
    """The station's outputs behind one interface (a `Light` with a diverter), on the loop."""

    def __init__(
        self,
        configs: list[ActuatorConfig],
        clock: Clock,
        report_health: Callable[[str, bool, str], None],
        call_soon: Callable[[Callable[[], None]], None],
        drivers: Mapping[str, OutputDriver] | None = None,
    ) -> None:
        """`report_health(device, up, detail)` runs on the loop (via `call_soon`); `drivers`
        replaces the configured driver of the named devices (tests)."""
        self._clock = clock
        self._report_health = report_health
        self._call_soon = call_soon
        chosen = drivers or {}
        self.workers = [
            ActuatorWorker(c, chosen.get(c.name) or make_driver(c), clock, self._on_health)
            for c in configs
        ]
        self.outputs = StationOutputs()
        self._generation = 0

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(w.device for w in self.workers)

    @property
    def settled(self) -> bool:
        """Every device up and confirmed the latest wanted state."""
        return all(
            w.health is not None
            and w.health.state == "up"
            and w.confirmed_generation >= self._generation
            for w in self.workers
        )

    def start(self) -> None:
        for worker in self.workers:
            worker.request(self.outputs, self._generation)
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            if not worker.stop():
                log.warning("actuator worker did not stop in time", extra={"device": worker.device})

    def set(self, color: LightColor, buzzer: bool, at_monotonic: float) -> None:
        """The `Light` interface: show `color` (the diverter stays where it is)."""
        if (color, buzzer) != (self.outputs.light, self.outputs.buzzer):
            log.info("light set", extra={"color": color.value, "buzzer": buzzer})
            self._want(StationOutputs(color, buzzer, self.outputs.route))

    def set_route(self, route: Route) -> None:
        if route != self.outputs.route:
            log.info("diverter set", extra={"route": route})
            self._want(StationOutputs(self.outputs.light, self.outputs.buzzer, route))

    def _want(self, outputs: StationOutputs) -> None:
        self.outputs = outputs
        self._generation += 1
        for worker in self.workers:
            worker.request(outputs, self._generation)

    def _on_health(self, health: DeviceHealth) -> None:
        # Any thread. "connecting" at start is neither a fault nor a recovery.
        if health.state != "connecting":
            up, detail, device = health.state == "up", health.detail, f"actuator {health.device}"
            self._call_soon(lambda: self._report_health(device, up, detail))
