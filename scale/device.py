"""The scale's transport and supervisor: one thread that owns the port.

It opens the pyserial URL, polls (or starts the stream), feeds the protocol's decoder and hands
each reading with its monotonic timestamp to `on_reading`. When the port fails or the scale falls
silent it reports the scale down, closes the port and reopens it with exponential backoff and
jitter. It logs only when the health state changes, never once per retry.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import serial

from scale.config import MtSicsScaleConfig, ScaleConfigModel
from scale.protocols import PROTOCOLS
from scale.protocols.framing import FrameDecoder
from scale.readings import WeightReading
from station.clock import Clock, SystemClock
from station.serial_read import read_available
from station.supervision import DeviceHealth, HealthState, Supervisor

log = logging.getLogger("packstation.scale")

# Longest a blocking read may take: bounds how late a poll goes out and how long stop() waits.
READ_SLICE_S = 0.05
_PORT_ERRORS = (serial.SerialException, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class DeviceCounters:
    readings: int
    frames: int
    bad_frames: int
    dropped_bytes: int
    reconnects: int
    empty_reads: int = 0  # "readable" with nothing to read, not counted as a lost link


class SerialPort(Protocol):
    """The part of pyserial's `Serial` the supervisor uses (a replay transport can stand in)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


def open_serial(config: ScaleConfigModel) -> SerialPort:
    port = serial.serial_for_url(
        config.port,
        baudrate=config.baudrate,
        bytesize=config.bytesize,
        parity=config.parity,
        stopbits=config.stopbits,
        xonxoff=config.xonxoff,
        # Short read slices; how long a reply may take is enforced by the supervisor.
        timeout=min(config.read_timeout_s, READ_SLICE_S),
        # Without a write timeout a write can block forever on XOFF or a full converter buffer.
        write_timeout=config.read_timeout_s,
        do_not_open=False,
    )
    port.reset_input_buffer()  # frames queued before we opened carry old weights
    return port


class _LinkLost(Exception):
    """The scale stopped talking; the message says what to check."""


class ScaleDevice(Supervisor):
    """Owns one scale's port in a dedicated thread; see the module docstring."""

    def __init__(
        self,
        config: ScaleConfigModel,
        on_reading: Callable[[WeightReading, float], None],
        on_health: Callable[[DeviceHealth], None],
        *,
        clock: Clock | None = None,
        open_port: Callable[[ScaleConfigModel], SerialPort] = open_serial,
        rng: random.Random | None = None,
    ) -> None:
        backoff = (config.reconnect_min_s, config.reconnect_max_s)
        clock = clock or SystemClock()
        super().__init__("scale", config.name, config.port, backoff, clock, on_health, log, rng)
        self.config = config
        self.spec = PROTOCOLS[config.protocol]
        self._on_reading = on_reading
        self._open_port = open_port
        self._commands: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._decoder: FrameDecoder | None = None
        self._totals = DeviceCounters(0, 0, 0, 0, 0)
        # The port and poll command while connected, for `request_reading` from another thread;
        # every write goes through `_write` under this lock.
        self._write_lock = threading.Lock()
        self._port: SerialPort | None = None
        self._poll: bytes | None = None

    # -- public ---------------------------------------------------------------------------------

    def counters(self) -> DeviceCounters:
        decoder = self._decoder
        if decoder is None:
            return self._totals
        totals = self._totals
        return DeviceCounters(
            readings=totals.readings,
            frames=totals.frames + decoder.frames,
            bad_frames=totals.bad_frames + decoder.bad_frames,
            dropped_bytes=totals.dropped_bytes + decoder.dropped_bytes,
            reconnects=totals.reconnects,
            empty_reads=totals.empty_reads,
        )

    def zero(self) -> bool:
        """Ask the scale to zero; False if its protocol has no zero command."""
        return self._queue(self.spec.zero_command)

    def tare(self) -> bool:
        """Ask the scale to tare. We never rely on it (a reset clears it); for bench use."""
        return self._queue(self.spec.tare_command)

    def request_reading(self) -> bool:
        """Poll right now, from any thread: a close wants a reading taken after it, and waiting
        for the next poll cycle would add up to a whole poll interval to every verdict. False when
        the scale is not connected or streams on its own (then the next frame comes anyway)."""
        port, poll = self._port, self._poll
        if port is None or poll is None:
            return False
        try:
            self._write(port, poll)
        except _PORT_ERRORS:
            return False  # the device thread notices the broken link and reconnects
        return True

    # -- the thread -----------------------------------------------------------------------------

    def _connect_and_serve(self) -> str:
        try:
            port = self._open_port(self.config)
        except _PORT_ERRORS as exc:
            return self._message(f"cannot open the port ({exc})", self._open_advice())
        return self._serve_until_lost(port)

    def _on_reconnect(self) -> None:
        self._count(reconnects=1)

    def _serve_until_lost(self, port: SerialPort) -> str:
        """Talk to the scale until it is lost (returns why) or until stop (returns "")."""
        decoder = self._decoder = self.spec.new_decoder()
        try:
            self._talk(port, decoder)
            return ""
        except _LinkLost as lost:
            return str(lost)
        except _PORT_ERRORS as exc:
            return self._message(f"link lost ({exc})", "reconnecting; check the cable")
        finally:
            self._decoder = None
            self._count(
                frames=decoder.frames,
                bad_frames=decoder.bad_frames,
                dropped_bytes=decoder.dropped_bytes,
            )
            _close_quietly(port)

    def _talk(self, port: SerialPort, decoder: FrameDecoder) -> None:
        poll = self.spec.poll_command
        if isinstance(self.config, MtSicsScaleConfig) and self.config.mtsics_mode == "stream":
            self._write(port, self.spec.stream_command or b"")
            poll = None
        self._port, self._poll = port, poll
        try:
            self._exchange(port, decoder, poll)
        finally:
            self._port = self._poll = None

    def _exchange(self, port: SerialPort, decoder: FrameDecoder, poll: bytes | None) -> None:
        last_valid = self._clock.monotonic()
        poll_sent_at: float | None = None
        next_poll = last_valid
        bytes_since_valid = 0
        while not self._stop.is_set():
            self._send_queued_commands(port)
            now = self._clock.monotonic()
            # One poll at a time: a slow scale must not build up a queue of old weights.
            reply_overdue = (
                poll_sent_at is not None and now - poll_sent_at > self.config.read_timeout_s
            )
            if poll is not None and now >= next_poll and (poll_sent_at is None or reply_overdue):
                self._write(port, poll)
                poll_sent_at, next_poll = now, now + self.config.poll_interval_s
            frames_before = decoder.frames
            chunk = self._read_available(port)
            bytes_since_valid += len(chunk)
            readings = decoder.feed(chunk)
            now = self._clock.monotonic()
            if decoder.frames > frames_before:
                poll_sent_at = None
            for reading in readings:
                self._on_reading(reading, now)
            if readings:
                self._count(readings=len(readings))
                last_valid, bytes_since_valid = now, 0
                self._set_health("up", f"{self.config.protocol} readings from {self.config.port}")
            elif now - last_valid > self.config.stale_after_s:
                raise _LinkLost(self._silence_message(bytes_since_valid, poll))

    def _read_available(self, port: SerialPort) -> bytes:
        chunk = read_available(port, self.config.port)
        if chunk is None:
            self._count(empty_reads=1)
            return b""
        return chunk

    def _send_queued_commands(self, port: SerialPort) -> None:
        while not self._commands.empty():
            self._write(port, self._commands.get_nowait())

    def _write(self, port: SerialPort, data: bytes) -> None:
        with self._write_lock:
            port.write(data)

    # -- health, messages, counters -------------------------------------------------------------

    def _set_health(self, state: HealthState, detail: str) -> None:
        self._health.set(state, detail)

    def _message(self, problem: str, advice: str) -> str:
        return f"scale {self.config.name} on {self.config.port}: {problem}; {advice}"

    def _serial_settings(self) -> str:
        if self.config.port.startswith(("socket://", "rfc2217://")):
            return "the converter's serial settings"
        return f"baud rate and framing ({self.config.serial_summary} configured)"

    def _open_advice(self) -> str:
        return "check the device path, that the adapter is plugged in and no other program has it"

    def _silence_message(self, stray_bytes: int, poll: bytes | None) -> str:
        stale = f"{self.config.stale_after_s:g} s"
        if stray_bytes:
            return self._message(
                f"{stray_bytes} bytes but no valid {self.config.protocol} frame within {stale}",
                f"check the protocol setting and {self._serial_settings()}",
            )
        if poll is not None:
            command = poll.decode("ascii").strip()
            return self._message(
                f"no reply to {command} within {stale}",
                f"check cable, power and {self._serial_settings()}",
            )
        return self._message(
            f"no data within {stale}",
            f"check cable, power, that the scale streams (continuous output / SIR) and "
            f"{self._serial_settings()}",
        )

    def _queue(self, command: bytes | None) -> bool:
        if command is None:
            return False
        self._commands.put(command)
        return True

    def _count(self, **increments: int) -> None:
        totals = self._totals
        self._totals = replace(
            totals, **{name: getattr(totals, name) + added for name, added in increments.items()}
        )


def _close_quietly(port: SerialPort) -> None:
    try:
        port.close()
    except _PORT_ERRORS:
        log.debug("closing the scale port failed", exc_info=True)
