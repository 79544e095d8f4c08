"""The station daemon: one asyncio loop owns the session; devices and the broker hand in through a
queue; effects are carried out in the order the session returned them.

Threads: one per scale, one per scanner, one per output device (light, diverter), paho's network
thread and the outbox drainer. None of them touches the session: they post typed items into
`_inbox` with `call_soon_threadsafe`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import logging
import math
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scale.weighing import scale_error_g
from station import __version__
from station.actuators.worker import ActuatorBank
from station.api.server import StationApi
from station.catalog_file import load_catalog
from station.channels.base import ChannelContext, EvidenceChannel
from station.channels.build import build_channels
from station.channels.insertion import InsertionChannel
from station.channels.weight import WeightChannel, weight_info
from station.clock import Clock, ScaledClock, SystemClock
from station.clock_offset import ClockMonitor, ClockOffset, ClockReadError, http_reference
from station.config import StationConfig, station_policy
from station.config_loader import ConfigError, load_config
from station.domain import BoxType, Catalog
from station.event_shapes import logical_key, to_event
from station.evidence import (
    IMAGES_DIR,
    ChainMoved,
    ChainRecord,
    EvidenceStore,
    canonical_json,
)
from station.evidence_retention import EvidencePruner, PruneResult, pending_events
from station.interlock import LEFT_AT_RESTART, LabelInterlock
from station.learning.service import LearnedWeights
from station.learning.store import FILE_NAME as LEARNED_WEIGHTS_FILE
from station.learning.store import LearnedWeightStore
from station.light import Light, LightColor
from station.logs import configure as configure_logging
from station.manifests import (
    FetchedManifest,
    HttpManifestSourceConfig,
    ManifestResult,
    ManifestService,
    open_manifest_source,
)
from station.metrics import StationMetrics
from station.mqtt import EventPublisher, Fault
from station.outbox import Outbox
from station.owed_evidence import OwedRecords
from station.preflight import preflight
from station.scanner import ScannerHealth, make_scanner
from station.session import (
    STATION_FAULT,
    VERIFICATION_RESULT,
    AttemptRecord,
    CaptureWeight,
    CollectEvidence,
    DeviceFault,
    DeviceRecovered,
    Effect,
    EvidenceReady,
    FetchManifest,
    FinalWeight,
    ManifestChanged,
    ManifestLoaded,
    ManifestRefused,
    PublishEvent,
    RecordAttempt,
    RecordAudit,
    RecordWeightSample,
    Scanned,
    Session,
    SessionInput,
    SessionSnapshot,
    SessionState,
    SetDiverter,
    SetLight,
    ShowMessage,
    Tick,
    WeighFinal,
    WeightCaptured,
)
from station.session_store import SessionStore
from station.status import DeviceStatus, StationStatus
from station.storage import damage, set_aside, takes_writes
from station.systemd import notify as _sd_notify
from station.systemd import watchdog_interval_s
from station.verification import ChannelReport, ChannelState, Reason
from station.weight_check import ScaleState, absence_detection, lookalike_detection

log = logging.getLogger("packstation.daemon")

_TICK_S = 1.0
_CHANNEL_GRACE_S = 2.0  # real seconds a channel may overrun its deadline before it counts as down
_IDLE_STATES = frozenset({SessionState.LOGGED_OUT, SessionState.IDLE})
# A loop this far behind its inbox is not keeping up; systemd's watchdog then restarts it.
_HEALTHY_INBOX_BACKLOG = 1_000
CLOCK_FAULT = "clock offset"
_INBOUND_ENVELOPE_BYTES = 64 * 1024
STORAGE_UNUSABLE = 3  # exit status: the data directory cannot hold the station's files


@dataclass(frozen=True, slots=True)
class _Scan:
    raw: str
    source: str
    at: float


@dataclass(frozen=True, slots=True)
class _Health:
    device: str
    up: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _PublisherFault:
    fault: Fault


_InboxItem = _Scan | _Health | _PublisherFault | SessionInput
Observer = Callable[[Effect], None]


class StationDaemon:
    def __init__(
        self,
        config: StationConfig,
        *,
        clock: Clock | None = None,
        light: Light | None = None,
    ) -> None:
        """`light`, if given, is shown every light change too (tests and benchmarks record them
        with a `RecordingLight`); the configured actuators are driven either way."""
        self.config = config
        self.clock = clock or SystemClock()
        self.catalog = load_catalog(config.catalog.path)
        self.light = light
        self.observers: list[Observer] = []
        data_dir = config.station.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # Damaged files found at start, moved aside: (file, moved to, why), published once running.
        self._set_aside: list[tuple[Path, Path, str]] = []
        self._outbox_path = self._usable(data_dir / "outbox.sqlite3")
        self._evidence_path = self._usable(data_dir / "evidence.sqlite3")
        self._session_path = self._usable(data_dir / "session.sqlite3")
        # Where evidence images are written: the data folder's, and the camera's own folder
        # when [vision] evidence_dir names another (retention and the API look in both).
        vision_dir = config.vision.evidence_dir if config.vision else None
        folders = (data_dir / IMAGES_DIR, vision_dir)
        self.image_folders = tuple(dict.fromkeys(d for d in folders if d is not None))
        self.outbox = Outbox(self._outbox_path, self.clock)
        self._owed = OwedRecords(self.outbox, data_dir)
        self.evidence = EvidenceStore(
            self._evidence_path,
            config.station.id,
            config.station.site,
            on_settled=self._owed.settled,
            on_unwritable=self._owed.unwritable,
        )
        self._owed.take_back(self.evidence)
        # A stored session whose recovery could not be carried out yet (its audit not written).
        self._recovery_pending: SessionSnapshot | None = None
        self._captured_at: float | None = None  # the last weigh-one-unit capture kept
        self.session_store = SessionStore(self._session_path)
        self._saved_session: SessionSnapshot | None = None
        self._versions = {
            "software": __version__,
            "config_sha256": hashlib.sha256(
                canonical_json(config.model_dump(mode="json")).encode()
            ).hexdigest(),
        }
        self.pruner = EvidencePruner(
            self.evidence.path,
            self.image_folders,
            config.evidence,
            lambda: pending_events(self.outbox.pending),
        )
        # What the channels saw for the attempt being decided, for its evidence record:
        # (order, carton, attempt) -> body additions; one carton at a time, so one entry.
        self._observed: tuple[tuple[str, str, int], dict[str, object]] | None = None
        self.publisher = EventPublisher(
            config.mqtt,
            self.outbox,
            config.station.id,
            config.station.site,
            self.clock,
            on_fault=lambda fault: self._post(_PublisherFault(fault)),
            # The largest legitimate inbound message is a manifest answer: the manifest plus
            # its envelope. Anything larger is dropped unread.
            max_inbound_bytes=config.manifests.max_bytes + _INBOUND_ENVELOPE_BYTES,
        )
        self.manifests = ManifestService(
            # An MQTT source asks over the publisher's connection: built above, started in run().
            open_manifest_source(config.manifests.source, publisher=self.publisher),
            self.catalog,
            data_dir / "manifest-cache",
            config.manifests.max_bytes,
            self.clock,
        )
        self.session = Session(
            config.workflow,
            self.catalog,
            station_policy(config),
            self.clock,
            weight_power=self._weight_power,
            lookalike_power=self._lookalike_power,
        )
        self.scanners = [
            make_scanner(c, self._on_scan, self._on_scanner_health, self.clock)
            for c in config.scanners
        ]
        self._down: dict[str, str] = {}  # device -> why, while it is down
        context = ChannelContext(
            clock=self.clock,
            catalog=self.catalog,
            call_soon=self._call_soon,
            report_health=self._on_health_change,
            is_down=lambda device: device in self._down,
            is_idle=lambda: self.session.state in _IDLE_STATES,
            open_carton=self.session.carton_view,
        )
        self.channels = build_channels(config, context)
        self.weight = next(c for c in self.channels if isinstance(c, WeightChannel))
        self.learning = LearnedWeights(
            config.learning,
            self.catalog,
            config.weight,
            LearnedWeightStore(
                data_dir / LEARNED_WEIGHTS_FILE,
                config.station.site,
                config.station.id,
                config.learning.max_samples,
            ),
            self.clock,
        )
        self.weight.learned = self.learning
        for channel in self.channels:
            if isinstance(channel, InsertionChannel):
                channel.learned = self.learning  # its scan-confirmed steps, until the verdict
        self.actuators = ActuatorBank(
            config.actuators, self.clock, self._on_health_change, self._call_soon
        )
        self._device_names = [
            *self.actuators.devices,
            *(device for channel in self.channels for device in channel.devices),
            *(f"scanner {c.name}" for c in config.scanners),
        ]
        self._never_up = set(self._device_names)
        # Set once every device has been up at least once (for simulations and tests; systemd
        # readiness does not wait for it: a station with a dead scale still runs, faulted).
        self.devices_seen = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[_InboxItem] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_at = self.clock.monotonic()
        self.metrics = StationMetrics(self.outbox.depth, lambda: len(self._down))
        self.observers.append(lambda effect: self.metrics.on_effect(effect, self.clock.monotonic()))
        self.observers.append(self.learning.on_effect)
        for channel in self.channels:
            channel.attach_metrics(self.metrics)
            channel.attach_publisher(self.publisher)
            self.observers.append(channel.on_effect)
        source = config.manifests.source
        self.clock_monitor = ClockMonitor(
            config.clock,
            http_reference(source.url_template)
            if isinstance(source, HttpManifestSourceConfig)
            else None,
        )
        self.clock_offset: ClockOffset | None = None
        self._clock_unknown_logged = False
        # The station's internal queues, so a soak (benchmarks/soak.py) can see one grow.
        self.metrics.gauge(
            "packstation_loop_inbox_depth",
            "Inputs (scans, readings, results) waiting for the loop.",
            lambda: self._inbox.qsize(),
        )
        self.metrics.gauge(
            "packstation_loop_tasks",
            "Background tasks on the loop (manifest fetches, evidence collection, timers).",
            lambda: len(self._tasks),
        )
        self.metrics.gauge(
            "packstation_mqtt_inflight",
            "Events published and waiting for the broker's PUBACK.",
            lambda: self.publisher.inflight,
        )
        self.metrics.gauge(
            "packstation_mqtt_read_ahead",
            "Events read from the outbox ahead of sending.",
            lambda: self.publisher.read_ahead,
        )
        self.metrics.gauge(
            "packstation_clock_offset_seconds",
            "Wall clock minus the reference clock (NaN: not measured); docs/evidence.md.",
            lambda: self.clock_offset.offset_s if self.clock_offset else math.nan,
        )
        self.metrics.gauge(
            "packstation_clock_offset_uncertainty_seconds",
            "The offset measurement's error bound (NaN: not measured).",
            lambda: self.clock_offset.uncertainty_s if self.clock_offset else math.nan,
        )
        self.interlock = LabelInterlock(
            self.session,
            self.evidence,
            self.actuators,
            self.publisher,
            self.clock.now_utc,
            self._call_soon,
            self.feed,
            lambda order_id, carton_id: self._owed.left_at((order_id, carton_id)),
        )
        self.interlock.subscribe()
        self.api = StationApi(self) if config.api.enabled else None
        if self.api is not None:
            self.observers.append(self.api.on_effect)

    def _usable(self, path: Path) -> Path:
        """`path`, with a damaged file there moved aside first (never deleted: its rows are
        evidence and unsent events); the fault is published once the publisher runs."""
        why = damage(path)
        if why is not None:
            moved = set_aside(path, self.clock.now_utc())
            log.critical(
                "damaged station file moved aside; starting with an empty one",
                extra={"file": str(path), "moved_to": str(moved), "why": why},
            )
            self._set_aside.append((path, moved, why))
        return path

    def _weight_power(self, expected: Mapping[str, int], box: BoxType | None) -> dict[str, float]:
        """For the session's plan: how surely the weight would reveal each SKU missing."""
        catalog, box = self._weights_checked(expected, box)
        return absence_detection(expected, catalog, box, self._scale_error, self.config.weight)

    def _lookalike_power(
        self, expected: Mapping[str, int], box: BoxType | None
    ) -> dict[str, float]:
        """For the session's plan: how surely the weight would reveal a look-alike swapped in."""
        catalog, box = self._weights_checked(expected, box)
        return lookalike_detection(expected, catalog, box, self._scale_error, self.config.weight)

    def _weights_checked(
        self, expected: Mapping[str, int], box: BoxType | None
    ) -> tuple[Catalog, BoxType | None]:
        """The unit weights and tare the weight check will measure against (learned ones in
        `use` mode), so the plan's detectability is the check's own."""
        items = self.catalog.items
        # A look-alike's weight counts too (the weight that would tell it apart).
        skus = list(expected) + [
            o for sku in expected if sku in items for o in self.catalog.lookalikes(sku)
        ]
        weights = self.learning.effective(skus, box)
        return weights.catalog, weights.box or box

    def _scale_error(self, grams: float) -> float:
        return scale_error_g(grams, self.config.scale.division_g)

    # -- life cycle ------------------------------------------------------------------------------

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.publisher.start()
        self.actuators.start()
        self._report_set_aside()
        self._recover_session()
        self._settle_owed_at_start()
        for channel in self.channels:
            channel.start()
        for scanner in self.scanners:
            scanner.start()
        self._ticker = asyncio.ensure_future(self._tick())
        if self.api is not None:
            await self.api.start()
        self._spawn(self._retention())
        if self.clock_monitor.enabled:
            self._spawn(self._watch_clock())
        watchdog = watchdog_interval_s()
        if watchdog is not None:
            self._spawn(self._watchdog(watchdog))
        # What start-up built (the catalog: tens of thousands of SKUs at a real site, the
        # config, the models) lives as long as the daemon. Frozen out of the garbage
        # collector's reach, a full collection walks only what came since instead of stalling
        # the loop on the whole catalog (~100 ms for 50,000 SKUs on a 2-core VM).
        gc.freeze()
        log.info(
            "station ready",
            extra={
                "station": self.config.station.id,
                "mode": self.config.workflow.mode,
                # The bound port, so `[api] port = 0` (a free one) can still be found.
                "api_port": self.api.port if self.api is not None else None,
            },
        )
        _sd_notify("READY=1")
        if ready:
            ready()
        try:
            await self._serve()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """Ask the loop to stop; safe from any thread or a signal handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _serve(self) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        while not self._stopping.is_set():
            get = asyncio.ensure_future(self._inbox.get())
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                continue
            try:
                self._handle(get.result())
            except Exception:  # one bad input must not stop the station; it is logged
                log.exception("input handling failed; the station carries on")

    async def _shutdown(self) -> None:
        _sd_notify("STOPPING=1")
        if self.api is not None:
            await self.api.stop()
        self._ticker.cancel()
        for task in self._tasks:
            task.cancel()
        for scanner in self.scanners:
            scanner.stop()
        for channel in self.channels:
            channel.stop()
        await asyncio.to_thread(self.actuators.stop)  # leaves every output off: fail-safe
        await asyncio.to_thread(self.publisher.stop, 5.0)
        self.manifests.close()
        self.session_store.close()
        self.evidence.close()
        self.learning.close()
        self.outbox.close()
        gc.unfreeze()  # what is left of this station may be collected (tests run many)
        log.info("station stopped", extra={"station": self.config.station.id})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_soon(self, work: Callable[[], None]) -> None:
        """Run `work` on the loop, from any thread (device readings)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(work)

    def _post(self, item: _InboxItem) -> None:
        """Hand an item to the loop from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._inbox.put_nowait, item)

    # -- inputs ------------------------------------------------------------------------------

    def _handle(self, item: _InboxItem) -> None:
        match item:
            case _Scan(raw, source, _):
                log.info("scan", extra={"source": source, "length": len(raw)})
                self.feed(Scanned(self.session.classify(raw)))
            case _Health(device, up, detail):
                self._on_health_change(device, up, detail)
            case Tick():
                self._probe_storage()
                self.feed(item)
            case _PublisherFault(fault):
                # A broker refusing our events (or the connection) is a station fault the packer
                # and the supervisor see; the events wait in the outbox meanwhile.
                self._on_health_change(f"mqtt {fault.code.value}", not fault.active, fault.message)
            case _:
                self.feed(item)

    def feed(self, event: SessionInput) -> list[Effect]:
        """Give the session one input and carry out its effects (on the loop); returns them."""
        return self._step(lambda: self.session.handle(event))

    def _step(self, decide: Callable[[], list[Effect]]) -> list[Effect]:
        return self._carry_out(decide)[0]

    def _carry_out(
        self, decide: Callable[[], list[Effect]], retrying: bool = False
    ) -> tuple[list[Effect], bool]:
        """One session step: its effects carried out in order, then the session persisted; the
        effects and whether they were all carried out. A step whose records could not be
        written is undone (the session rolls back), so the carton stays held instead of moving
        on without its record. `retrying`: a step tried again while the station is held
        already (nothing more to say if it fails again)."""
        before = self.session.snapshot()
        effects = decide()
        failure = self._execute(effects)
        if failure is None:
            self._save_session(announce=bool(effects))
        else:
            self.session.roll_back(before)
            if not retrying:
                self._hold(*failure)  # after the roll-back: its fault event says what is held
        return effects, failure is None

    def _save_session(self, *, announce: bool) -> None:
        """Persist the session if it changed. A failure holds the station; `announce=False` (a
        step that did nothing, such as most ticks, retrying an earlier failure) does not tell
        the packer again what the screen already says."""
        snapshot = self.session.snapshot()
        if self._recovery_pending is not None or not snapshot.worth_saving_over(
            self._saved_session
        ):
            return  # (a recovery not carried out yet: the stored session is all there is of it)
        try:
            self.session_store.save(snapshot)
        except Exception as exc:  # the step is done; a restart would recover an older state
            # Retried at every step (the tick's too) until it works: said once, not every second.
            already_down = f"storage {self._session_path.name}" in self._down
            if not already_down:
                log.exception("session could not be saved", extra={"file": str(self._session_path)})
            if announce or not already_down:
                self._hold(exc, self._session_path)
            return
        self._saved_session = snapshot
        self._storage_written(self._session_path)

    def _recover_session(self) -> None:
        """Carry on with the session the previous process left (see Session.recover)."""
        fresh = self.session.snapshot()
        try:
            snapshot = self.session_store.load()
            if snapshot is None:
                return
            log.warning("recovering the session", extra={"state": snapshot.state.value})
            self._recovery_pending = snapshot
            self._retry_recovery(retrying=False)
        # Unreadable, or a carton this catalog cannot take back (a SKU since removed): never a
        # reason not to start, and never dropped without a word.
        except Exception as exc:
            log.exception("session not recovered", extra={"file": str(self._session_path)})
            self._recovery_pending = None
            self.session.restore(fresh)
            self.session_store.close()
            moved = set_aside(self._session_path, self.clock.now_utc())
            self.session_store = SessionStore(self._session_path)
            log.critical(
                "stored session not recovered, moved aside; the open carton (if any) is lost",
                extra={"file": str(self._session_path), "moved_to": str(moved), "why": str(exc)},
            )
            self._publish_storage_fault(
                "session_lost",
                self._session_path,
                f"The session in {self._session_path} cannot be recovered ({exc}). Moved to "
                f"{moved}; an open carton is not recovered: the packer scans it again from the "
                "start.",
            )

    def _retry_recovery(self, retrying: bool = True) -> None:
        """Recover the stored session; until its step is carried out (its audit written: a full
        disk) the stored session is kept as it is and recovery is tried again at each tick."""
        snapshot = self._recovery_pending
        if snapshot is None:
            return
        if self._carry_out(lambda: self.session.recover(snapshot), retrying)[1]:
            self._recovery_pending = None
            self._save_session(announce=True)

    def _report_set_aside(self) -> None:
        for path, moved, why in self._set_aside:
            self._publish_storage_fault(
                "storage_set_aside",
                path,
                f"{path} was damaged ({why}) and was moved to {moved}; the station started "
                "with an empty file. Rows in it (unsent events, evidence) are not lost: salvage "
                "them as docs/reliability.md says.",
            )
        self._set_aside.clear()

    def _publish_storage_fault(self, code: str, path: Path, message: str) -> None:
        degraded = self.session.degraded
        fault = {
            "fault": "storage",
            "code": code,
            "device": f"storage {path.name}",
            "degraded": degraded.flag() if degraded else None,
        }
        failure = self._execute([PublishEvent(STATION_FAULT, {**fault, "message": message})])
        if failure is not None:
            self._hold(*failure)

    def _probe_storage(self) -> None:
        """A file that could not be written (a full disk) is tried again at every tick, so its
        fault clears as soon as it takes writes, not only at the packer's next close. On the loop:
        one small fsynced write per faulty file per tick, and only while a fault is up."""
        for path in (self._outbox_path, self._evidence_path):
            if f"storage {path.name}" in self._down and takes_writes(path) is None:
                if path == self._evidence_path and self.evidence.owed:
                    try:
                        self.evidence.pay_owed()
                    except Exception:  # still cannot: the fault stays up
                        continue
                self._storage_written(path)
        # What start could not write: retried while it is pending, whatever the faults say.
        self._retry_recovery()
        if self._owed.pending_at_start and self._recovery_pending is None:
            self._settle_owed_at_start(retrying=True)

    def _storage_written(self, path: Path) -> None:
        """A write to `path` succeeded: a storage fault on it is over."""
        device = f"storage {path.name}"
        if device in self._down:
            self._on_health_change(device, True, "written again")

    def status(self) -> StationStatus:
        """The station at this moment, for the screen, the API and health checks (on the loop)."""
        station = self.config.station
        return StationStatus(
            station_id=station.id,
            site_id=station.site,
            mode=self.session.mode,
            locale=station.locale,
            state=self.session.state,
            packer=self.session.packer,
            carton=self.session.carton_view(),
            devices=self._devices(),
            weight=self.weight.assessment(),
            outbox_depth=self.outbox.depth(),
            uptime_s=self.clock.monotonic() - self._started_at,
            degraded=self.session.degraded.flag() if self.session.degraded else None,
            clock=self.clock_offset,
        )

    def _devices(self) -> tuple[DeviceStatus, ...]:
        named = self._device_names
        faults = [name for name in self._down if name not in named]  # mqtt, scale zero, ...
        devices = [
            DeviceStatus(name, "down", self._down[name])
            if name in self._down
            else DeviceStatus(name, "connecting" if name in self._never_up else "up")
            for name in [*named, *faults]
        ]
        devices.append(DeviceStatus("mqtt", "up" if self.publisher.connected else "down"))
        return tuple(devices)

    def _on_scan(self, raw: str, source: str, at: float) -> None:
        self._post(_Scan(raw, source, at))

    def _on_scanner_health(self, health: ScannerHealth) -> None:
        if health.state != "connecting":
            self._post(_Health(f"scanner {health.source}", health.state == "up", health.detail))

    def _on_health_change(self, device: str, up: bool, detail: str) -> None:
        if up:
            self._never_up.discard(device)
            if not self._never_up and not self.devices_seen.is_set():
                log.info("all devices up", extra={"devices": sorted(self._device_names)})
                self.devices_seen.set()
        if up and device in self._down:
            del self._down[device]
            self.metrics.reconnected(device)
            self.feed(DeviceRecovered(device))
        elif not up and device not in self._down:
            self._down[device] = detail
            self.feed(DeviceFault(device, detail, output=device in self.actuators.devices))

    async def _tick(self) -> None:
        while True:
            await self.clock.sleep(_TICK_S)
            self._post(Tick(self.clock.monotonic()))

    async def _retention(self) -> None:
        """Prune old evidence now and then, on a thread (station.evidence_retention)."""
        while True:
            try:
                # A wall clock known to be off (a bad NTP step, a year ahead) would make every
                # record "too old" at once: by age only while it is not.
                offset, bound = self.clock_offset, self.config.clock.max_offset_s
                by_age = offset is None or not offset.beyond(bound)
                now = self.clock.now_utc()
                result = await asyncio.to_thread(self.pruner.run, now, by_age)
                self.metrics.evidence_pruned(result.records, result.images)
                self._report_retention(result, by_age)
            except Exception:  # a failed pass is retried next time; evidence is only kept longer
                log.exception("evidence retention failed; retried at the next interval")
            await self.clock.sleep(self.config.evidence.prune_interval_s)

    def _report_retention(self, result: PruneResult, by_age: bool) -> None:
        if not by_age:
            log.warning("evidence kept past its age: the wall clock is off; fix the station's NTP")
        if result.stopped_for_outbox and result.bytes_used > self.config.evidence.max_bytes:
            log.warning(
                "evidence over its disk budget, kept for unsent events",
                extra={
                    "bytes_used": result.bytes_used,
                    "max_bytes": self.config.evidence.max_bytes,
                    "outbox_depth": self.outbox.depth(),
                    "check": "the broker: once the outbox drains, retention frees the space",
                },
            )

    async def _watch_clock(self) -> None:
        """Measure the wall-clock offset now and then; a fault while it is certainly too big.
        Real seconds between checks (a simulation's fast clock says nothing about the wall)."""
        bound = self.config.clock.max_offset_s
        while True:
            try:
                offset = await asyncio.to_thread(self.clock_monitor.measure)
            except ClockReadError as exc:
                if not self._clock_unknown_logged:
                    log.warning("clock offset unknown", extra={"problem": str(exc)})
                self._clock_unknown_logged = True
                # A clock last measured too far off stays so until a measurement says otherwise:
                # one failed check must not let retention judge ages by it again.
                last = self.clock_offset
                if last is None or not last.beyond(bound):
                    self.clock_offset = None
            else:
                self._clock_unknown_logged = False  # said again at the next failure
                self.clock_offset = offset
                detail = (
                    f"wall clock is {offset.offset_s:+.1f} s (± {offset.uncertainty_s:.1f} s) off "
                    f"{offset.source}, more than {bound:g} s: evidence times will not match CCTV; "
                    "fix the station's NTP"
                )
                self._on_health_change(CLOCK_FAULT, not offset.beyond(bound), detail)
            await asyncio.sleep(self.config.clock.interval_s)

    async def _watchdog(self, interval_s: float) -> None:
        """Ping systemd only while the loop keeps up: a stalled loop never gets here, and a loop
        drowning in its inbox, or whose ticker died, stops pinging and is restarted."""
        while True:
            if self._inbox.qsize() < _HEALTHY_INBOX_BACKLOG and not self._ticker.done():
                _sd_notify("WATCHDOG=1")
            else:
                log.error(
                    "loop unhealthy; watchdog not pinged", extra={"backlog": self._inbox.qsize()}
                )
            await asyncio.sleep(interval_s)

    # -- effects -----------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> tuple[Exception, Path | None] | None:
        """Carry out `effects` in order; on a failure the rest are not applied and the error
        and the file that could not be written are returned.

        A verdict's record is hashed before its event goes out, so the event can carry the
        chain hash; it is written only after the event is committed (the session's order: no
        record, hence no label permission, for a verdict nobody was told about), and the outbox
        keeps it with the event until it is (`EvidenceStore.owe`)."""
        record: ChainRecord | None = None
        written: set[Path] = set()
        for effect in effects:
            store = self._store_of(effect)
            try:
                if isinstance(effect, PublishEvent) and effect.kind == VERIFICATION_RESULT:
                    attempt = next((e for e in effects if isinstance(e, RecordAttempt)), None)
                    store = self._evidence_path  # hashing it writes the records owed first
                    record = self._prepare(attempt.record) if attempt else None
                    store = self._outbox_path
                self._apply(effect, record)
            except Exception as exc:
                # Fail closed: nothing after an effect that could not be carried out (an event
                # not committed, evidence not written) is applied or shown: no verdict without
                # its record. The session's effects are ordered with that in mind.
                log.exception(
                    "effect failed; the rest of this step is held",
                    extra={"file": str(store) if store else None},
                )
                return exc, store
            # A fault event's own commit proves little (the fault it reports would clear
            # itself at once): the next carton event or record does.
            if store is not None and not (
                isinstance(effect, PublishEvent) and effect.kind == STATION_FAULT
            ):
                written.add(store)
            self._notify(effect)
        for store in written:
            self._storage_written(store)
        return None

    def _store_of(self, effect: Effect) -> Path | None:
        """The file an effect writes to, if any."""
        match effect:
            case PublishEvent():
                return self._outbox_path
            case RecordAttempt() | RecordAudit():
                return self._evidence_path
        return None

    def _notify(self, effect: Effect) -> None:
        for observer in self.observers:
            try:
                observer(effect)
            except Exception:  # a screen or metrics bug must not stop verification
                log.exception("observer failed", extra={"effect": type(effect).__name__})

    def _hold(self, exc: Exception, store: Path | None) -> None:
        """Amber, the packer told the carton is held, and (for a file) a storage fault raised:
        it clears by itself at the next successful write to that file."""
        with contextlib.suppress(Exception):
            self.actuators.set_route("exception")  # first: whatever happens next, no carton ships
            self._set_light(LightColor.AMBER, True)
        self._notify(SetLight("amber", buzzer=True))
        error = f"{store.name}: {exc}" if store else str(exc)
        held = ShowMessage("error", "station.storage_failed", {"error": error})
        self._apply(held, None)  # logged like every message the packer is shown
        self._notify(held)
        if store is not None:
            self._on_health_change(
                f"storage {store.name}",
                False,
                f"{store} cannot be written ({exc}). Cartons are held until it can: free disk "
                f"space under {store.parent}, or stop the station and move a damaged file aside "
                "(docs/reliability.md).",
            )

    def _settle_owed_at_start(self, retrying: bool = False) -> None:
        """Write what a stop left owed, once the session is recovered (its own audit may have
        written it already). A carton among them that the session does not hold left the
        station unverified whatever its record says (its light and diverter were never set):
        audited (`carton.left_at_restart`), so the interlock wants it verified again. Until that
        is written it is tried again at every tick (`retrying`: the station is held already)."""
        if self._recovery_pending is not None:
            return  # the session first: it may hold the carton
        left = self._owed.left_unverified((self.session.open_carton, self.session.awaiting_label))
        now = self.clock.now_utc()
        audits: list[Effect] = [RecordAudit(LEFT_AT_RESTART, _at_restart(k), now) for k in left]
        failure: tuple[Exception, Path | None] | None = None
        try:
            self.evidence.pay_owed()
        except Exception as exc:
            failure = (exc, self._evidence_path)
        failure = failure or self._execute(audits)
        if failure is None:
            self._owed.seen_to()
            self._storage_written(self._evidence_path)
        elif not retrying:
            log.error("evidence a stop left owed not written yet", extra={"why": str(failure[0])})
            self._hold(*failure)

    def _prepare(self, record: AttemptRecord) -> ChainRecord:
        key = (record.order_id, record.carton_id, record.attempt)
        observed = self._observed[1] if self._observed and self._observed[0] == key else {}
        return self.evidence.prepare_attempt(record, observed)

    def _apply(self, effect: Effect, record: ChainRecord | None) -> None:
        match effect:
            case PublishEvent():
                station = self.config.station
                anchor = None
                if record is not None and effect.kind == VERIFICATION_RESULT:
                    anchor = self.evidence.anchor(record)
                event_type, data, subject = to_event(effect, station.id, station.site, anchor)
                owed = (record.seq, record.stored_text()) if anchor and record else None
                key = logical_key(event_type, data)
                self.publisher.publish(
                    event_type, data, subject=subject, logical_key=key, owed=owed
                )
                if owed and record:
                    self.evidence.owe(record)
            case RecordAttempt(attempt):
                if record is None:
                    self.evidence.append(self._prepare(attempt))
                else:  # owed since its event was committed (the session puts the event first)
                    self.evidence.pay_owed()
                    if not self.evidence.holds(record):  # kept aside: never a verdict without it
                        raise ChainMoved(f"evidence record {record.seq} could not be written")
                self._observed = None
            case RecordAudit(kind, data, at):
                self.evidence.record_audit(kind, data, at)
            case SetLight(color, buzzer):
                self._set_light(LightColor(color), buzzer)
            case SetDiverter(route):
                self.actuators.set_route(route)
            case WeighFinal(order_id, carton_id):
                self._spawn(self._weigh_final(order_id, carton_id))
            case ShowMessage(level, key, params):
                # What the packer is told; a BLOCK is business as usual, not a daemon error.
                log.info(key, extra={"screen_level": level, "params": dict(params)})
            case FetchManifest(order_id, carton_id):
                self._spawn(self._fetch_manifest(order_id, carton_id))
            case CollectEvidence():
                self._spawn(self._collect_evidence(effect))
            case CaptureWeight():
                self._spawn(self._capture_weight(effect))
            case RecordWeightSample():
                self.learning.record_capture(effect)

    async def _capture_weight(self, request: CaptureWeight) -> None:
        """The weigh-one-unit flow: the settled weight of what is on the empty platter."""
        try:
            measured = await self.weight.settled_weight(self.config.verdict.settle_timeout_s)
        except Exception:  # a bug here must not leave the session waiting for this capture
            log.exception("weight capture failed")
            self._post(WeightCaptured(request.request, None, problem="failed"))
            return
        if measured.state is not ScaleState.SETTLED or measured.gross_g is None:
            self._post(WeightCaptured(request.request, None, problem=measured.state.value))
        elif measured.gross_g <= self.config.scale.zero_band_g:
            self._post(WeightCaptured(request.request, None, problem="empty_platter"))
        elif self._platter_not_emptied():
            # Units added to the last one weighed would each be taken for one unit.
            self._post(WeightCaptured(request.request, None, problem="platter_not_emptied"))
        else:
            self._captured_at = self.clock.monotonic()
            captured = WeightCaptured(request.request, measured.gross_g, measured.scale_error_g)
            self._post(captured)

    def _platter_not_emptied(self) -> bool:
        """The platter has not read empty since the last weighed capture (the first needs none:
        the scale was zeroed empty)."""
        emptied = self.weight.emptied_at
        return self._captured_at is not None and (emptied is None or emptied < self._captured_at)

    def _set_light(self, color: LightColor, buzzer: bool) -> None:
        self.actuators.set(color, buzzer, self.clock.monotonic())
        if self.light is not None:
            self.light.set(color, buzzer, self.clock.monotonic())

    async def _weigh_final(self, order_id: str, carton_id: str) -> None:
        requested_at = self.clock.monotonic()
        deadline = requested_at + self.config.verdict.settle_timeout_s
        try:
            grams = await self.weight.final_weight_g(requested_at, deadline)
        except Exception:  # a bug must not leave the PASS standing unchecked: no weight, withdrawn
            log.exception("final weight failed", extra={"order_id": order_id})
            grams = None
        self._post(FinalWeight(order_id, carton_id, grams))

    async def _fetch_manifest(self, order_id: str, carton_id: str) -> None:
        try:
            result = await asyncio.to_thread(self.manifests.fetch, order_id, carton_id)
            earlier = self.evidence.attempts_made(order_id, carton_id)
        except Exception as exc:  # a bug or a broken cache must not leave the carton LOADING
            log.exception("manifest fetch failed", extra={"order_id": order_id})
            self._post(ManifestRefused(order_id, carton_id, "source_error", str(exc)))
            return
        self._post(manifest_input(result, order_id, carton_id, earlier))

    async def _collect_evidence(self, request: CollectEvidence) -> None:
        manifest = request.manifest
        freshness = asyncio.ensure_future(asyncio.to_thread(self.manifests.check_current, manifest))
        requested_at = self.clock.monotonic()
        deadline = requested_at + self.config.verdict.settle_timeout_s
        collected = await asyncio.gather(
            *(self._timed(channel, request, requested_at, deadline) for channel in self.channels)
        )
        reports = [report for report, _ in collected]
        change = await self._bounded(freshness, self.config.verdict.manifest_check_timeout_s)
        if change is not None:
            self._post(
                ManifestChanged(manifest.order_id, manifest.carton_id, change.kind, change.message)
            )
            return
        weight = next((weight_info(r) for r in reports if r.channel == WeightChannel.name), None)
        observed = {report.channel: seen for report, seen in collected if seen}
        models = {name: seen["model"] for name, seen in observed.items() if "model" in seen}
        key = (manifest.order_id, manifest.carton_id, request.attempt)
        self._observed = (
            key,
            {
                "manifest": manifest,
                "observations": observed,
                "versions": {**self._versions, "models": models},
            },
        )
        self._post(EvidenceReady(request.attempt, tuple(reports), weight))

    async def _timed(
        self,
        channel: EvidenceChannel,
        request: CollectEvidence,
        requested_at: float,
        deadline: float,
    ) -> tuple[ChannelReport, Mapping[str, object]]:
        """A channel's report and observations; a channel that fails or overruns its deadline
        reports DOWN (and nothing observed), which sends the carton to REVIEW instead of leaving
        it stuck in VERIFYING."""
        grace = self.clock.real_seconds(deadline - self.clock.monotonic()) + _CHANNEL_GRACE_S
        observed: Mapping[str, object] = {}
        try:
            report = await asyncio.wait_for(channel.collect(request, requested_at, deadline), grace)
            observed = channel.observations()
        except Exception as exc:
            log.exception("channel failed", extra={"channel": channel.name})
            why = "timed out" if isinstance(exc, TimeoutError) else f"failed ({exc})"
            reason = Reason("channel_error", f"The {channel.name} channel {why}.", channel.name)
            report = ChannelReport(channel.name, ChannelState.DOWN, reasons=(reason,))
        self.metrics.channel_reported(report.channel, self.clock.monotonic() - requested_at)
        return report, observed

    async def _bounded(self, future: asyncio.Future[Any], timeout_s: float) -> Any:
        """The manifest re-check, if it answers in time; a slow WMS must not hold the verdict."""
        try:
            return await asyncio.wait_for(future, self.clock.real_seconds(timeout_s))
        except TimeoutError:
            log.warning("manifest re-check timed out; verdict uses the loaded version")
        except Exception:
            log.exception("manifest re-check failed; verdict uses the loaded version")
        return None


def _at_restart(key: tuple[str, str]) -> dict[str, object]:
    order_id, carton_id = key
    return {"order_id": order_id, "carton_id": carton_id, "reason": "stopped_before_recorded"}


def manifest_input(
    result: ManifestResult, order_id: str, carton_id: str, earlier_attempts: int = 0
) -> ManifestLoaded | ManifestRefused:
    """What the session is told about a fetch: the manifest (and the attempts the evidence holds
    for the carton already), or why it was refused."""
    if isinstance(result, FetchedManifest):
        return ManifestLoaded(result.manifest, result.from_cache, earlier_attempts)
    return ManifestRefused(order_id, carton_id, result.code, result.message)


# -- command line ----------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the station daemon")
    run.add_argument("config", type=Path, help="station TOML file")
    run.add_argument(
        "--clock-speed",
        type=float,
        default=1.0,
        help="run the station clock this many times faster (simulations only)",
    )
    run.set_defaults(func=run_daemon)


def load_station_config(path: Path) -> StationConfig:
    config = load_config(StationConfig, path, os.environ)
    return config.resolve_paths(path.resolve().parent)


def run_daemon(args: argparse.Namespace) -> int:
    try:
        config = load_station_config(args.config)
        problems = preflight(config)
        if problems:
            raise ConfigError(str(args.config), problems)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.json_lines)
    clock = SystemClock() if args.clock_speed == 1.0 else ScaledClock(args.clock_speed)
    try:
        daemon = StationDaemon(config, clock=clock)
    except sqlite3.Error as exc:
        # Said once, loudly, with what to do; systemd's restart limit then stops the retries.
        log.critical(
            "station files cannot be opened: free disk space or fix the data directory",
            extra={"data_dir": str(config.station.data_dir), "error": str(exc)},
        )
        return STORAGE_UNUSABLE
    asyncio.run(_run_until_signalled(daemon))
    return 0


async def _run_until_signalled(daemon: StationDaemon) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop)
    await daemon.run()
