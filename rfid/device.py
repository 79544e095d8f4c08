"""One RFID reader's transport and supervisor: a thread that owns the connection.

It opens the pyserial URL (a serial port, socket:// for converters and LLRP readers), runs the
protocol's engine (rfid.protocols) over it and hands each batch of tag reads, stamped on the
station's monotonic clock, to `on_reads` from that thread (the callback must be thread-safe and
quick: hand off to a queue or an event loop). When the link fails, the engine gives up or the
reader falls silent, it reports the reader down, closes the link and reconnects with exponential
backoff and jitter. It logs only when the health state changes, never once per retry.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import serial

from rfid.config import LlrpReaderConfig, ReaderConfigModel, _SerialReaderBase
from rfid.protocols import new_engine
from rfid.protocols.framing import Engine
from rfid.reads import TagRead
from station.clock import Clock, SystemClock
from station.supervision import DeviceHealth, HealthState, Supervisor

# A reader's health is a device health: `device` is the reader's name, `port` its endpoint.
ReaderHealth = DeviceHealth

log = logging.getLogger("packstation.rfid")

READ_SLICE_S = 0.05  # longest a blocking read takes: bounds tick latency and stop()
GOODBYE_WAIT_S = 0.5  # longest wait for an LLRP reader to close the session after our goodbye
_LINK_ERRORS = (serial.SerialException, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class ReaderCounters:
    reads: int
    frames: int
    bad_frames: int
    dropped_bytes: int
    reconnects: int
    last_problem: str | None = None


class Link(Protocol):
    """The part of pyserial's `Serial` the supervisor uses (a replay transport can stand in)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class TcpLink:
    """A TCP connection with the Link interface: `read` returns whatever arrived within the read
    timeout (b"" if nothing), and raises ConnectionError once the peer has closed, after every
    byte it sent has been returned (pyserial's socket:// drops them)."""

    def __init__(self, host: str, port: int, connect_timeout_s: float, write_timeout_s: float):
        self._socket = socket.create_connection((host, port), timeout=connect_timeout_s)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.settimeout(READ_SLICE_S)
        self._write_timeout_s = write_timeout_s

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        try:
            data = self._socket.recv(max(size, 65536))
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionError("the reader closed the connection")
        return data

    def write(self, data: bytes) -> int | None:
        self._socket.settimeout(self._write_timeout_s)
        try:
            self._socket.sendall(data)
        finally:
            self._socket.settimeout(READ_SLICE_S)
        return len(data)

    def close(self) -> None:
        self._socket.close()


def open_link(config: ReaderConfigModel) -> Link:
    """Open the reader with every timeout set: TCP for LLRP, else the pyserial URL."""
    if isinstance(config, LlrpReaderConfig):
        return TcpLink(
            config.host, config.tcp_port, config.connect_timeout_s, config.reply_timeout_s
        )
    settings: dict[str, object] = {}
    if isinstance(config, _SerialReaderBase):
        settings["baudrate"] = config.baudrate
    link = serial.serial_for_url(
        config.url, timeout=READ_SLICE_S, write_timeout=config.reply_timeout_s, **settings
    )
    link.reset_input_buffer()  # replies queued before we opened belong to another session
    return link


class _LinkLost(Exception):
    """The reader stopped working; the message says what to check."""


class RfidReader(Supervisor):
    """Owns one reader's link in a dedicated thread; see the module docstring."""

    def __init__(
        self,
        config: ReaderConfigModel,
        on_reads: Callable[[list[TagRead]], None],
        on_health: Callable[[ReaderHealth], None],
        *,
        clock: Clock | None = None,
        open_port: Callable[[ReaderConfigModel], Link] = open_link,
        rng: random.Random | None = None,
    ) -> None:
        backoff = (config.reconnect_min_s, config.reconnect_max_s)
        clock = clock or SystemClock()
        super().__init__(
            "RFID reader", config.name, config.endpoint, backoff, clock, on_health, log, rng
        )
        self.config = config
        self._on_reads = on_reads
        self._open_port = open_port
        self._engine: Engine | None = None
        self._totals = ReaderCounters(0, 0, 0, 0, 0)
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------------

    def counters(self) -> ReaderCounters:
        with self._lock:
            totals, engine = self._totals, self._engine
        if engine is None:
            return totals
        return replace(
            totals,
            frames=totals.frames + engine.frames,
            bad_frames=totals.bad_frames + engine.bad_frames,
            dropped_bytes=totals.dropped_bytes + engine.dropped_bytes,
            last_problem=engine.last_problem or totals.last_problem,
        )

    # -- the thread -----------------------------------------------------------------------------

    def _connect_and_serve(self) -> str:
        try:
            link = self._open_port(self.config)
        except _LINK_ERRORS as exc:
            return self._message(f"cannot connect ({exc})", self._open_advice())
        return self._serve_until_lost(link)

    def _on_reconnect(self) -> None:
        self._count(reconnects=1)

    def _serve_until_lost(self, link: Link) -> str:
        engine = new_engine(self.config)
        with self._lock:
            self._engine = engine
        try:
            self._talk(link, engine)
            return ""
        except _LinkLost as lost:
            return str(lost)
        except _LINK_ERRORS as exc:
            return self._message(f"link lost ({exc})", "reconnecting; check cable and power")
        finally:
            self._goodbye(link, engine)
            with self._lock:
                self._engine = None
                totals = self._totals
                self._totals = replace(
                    totals,
                    frames=totals.frames + engine.frames,
                    bad_frames=totals.bad_frames + engine.bad_frames,
                    dropped_bytes=totals.dropped_bytes + engine.dropped_bytes,
                    last_problem=engine.last_problem or totals.last_problem,
                )
            _close_quietly(link)

    def _talk(self, link: Link, engine: Engine) -> None:
        start = last_valid = self._clock.monotonic()
        engine.start(start)
        if engine.ready and self.config.stale_after_s is None:
            # A reader that only talks when a tag is near: an open link is all we can know.
            self._set_health(
                "up", f"{self.config.endpoint} open; the reader talks when tags are near"
            )
        bytes_since_valid = 0
        # pyserial's socket:// reports at most 1 byte waiting: read a block, bounded by the slice.
        block = 4096 if self.config.url.startswith("socket://") else 1
        while not self._stop.is_set():
            self._write(link, engine.take_output())
            chunk = link.read(max(link.in_waiting, block))
            now = self._clock.monotonic()
            frames_before = engine.frames
            reports = engine.feed(chunk, now) if chunk else []
            engine.tick(now)
            self._write(link, engine.take_output())
            bytes_since_valid += len(chunk)
            if engine.frames > frames_before:
                last_valid, bytes_since_valid = now, 0
                if engine.ready:
                    self._set_health(
                        "up", f"{self.config.protocol} inventory on {self.config.endpoint}"
                    )
            if reports:
                reads = [TagRead.from_report(r, self.config.name, now) for r in reports]
                self._count(reads=len(reads))
                self._on_reads(reads)
            if engine.failure is not None:
                raise _LinkLost(self._message(engine.failure, "reconnecting"))
            stale = self.config.stale_after_s
            if stale is not None and now - last_valid > stale:
                raise _LinkLost(self._silence_message(bytes_since_valid, stale))

    def _goodbye(self, link: Link, engine: Engine) -> None:
        """Stop the inventory politely (LLRP: stop and delete the ROSpec, close the session)."""
        try:
            engine.stop()
            self._write(link, engine.take_output())
            if engine.closed_by_reader:
                self._await_close(link)
        except _LINK_ERRORS:
            log.debug("saying goodbye to reader %s failed", self.config.name, exc_info=True)

    @staticmethod
    def _await_close(link: Link) -> None:
        """Read until the reader closes the session (or a short deadline). Closing first, with
        reports still unread in our socket, makes the kernel reset the connection, and a reset
        can discard our goodbye before the reader has read it: its ROSpec would keep running."""
        deadline = time.monotonic() + GOODBYE_WAIT_S
        while time.monotonic() < deadline:
            link.read(4096)  # ConnectionError once the reader has closed

    @staticmethod
    def _write(link: Link, data: bytes) -> None:
        if data:
            link.write(data)

    # -- health, messages, counters -------------------------------------------------------------

    def _set_health(self, state: HealthState, detail: str) -> None:
        self._health.set(state, detail)

    def _message(self, problem: str, advice: str) -> str:
        return (
            f"RFID reader {self.config.name} ({self.config.protocol}) on "
            f"{self.config.endpoint}: {problem}; {advice}"
        )

    def _open_advice(self) -> str:
        if self.config.protocol == "llrp":
            return "check the host name, network and that the reader's LLRP service is enabled"
        return "check the device path, that the adapter is plugged in and no other program has it"

    def _silence_message(self, stray_bytes: int, stale: float) -> str:
        if stray_bytes:
            return self._message(
                f"{stray_bytes} bytes but no valid {self.config.protocol} frame within {stale:g} s",
                "check the protocol and baud rate settings",
            )
        return self._message(f"no reply within {stale:g} s", "check cable, power and baud rate")

    def _count(self, **increments: int) -> None:
        with self._lock:
            totals = self._totals
            self._totals = replace(
                totals,
                **{name: getattr(totals, name) + added for name, added in increments.items()},
            )


def _close_quietly(link: Link) -> None:
    try:
        link.close()
    except _LINK_ERRORS:
        log.debug("closing the RFID link failed", exc_info=True)
