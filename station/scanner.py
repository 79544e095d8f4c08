"""Barcode scanner inputs: a serial scanner and a USB keyboard-wedge scanner read through evdev.

Each input runs in its own thread and hands every code to `on_scan(raw, source, monotonic_ts)`
and every health change to `on_health(ScannerHealth)`; both callbacks must be thread-safe (the
daemon passes ones that do `loop.call_soon_threadsafe`). The byte framing and the key-event
translation are pure and bounded, so they are tested without devices.
"""

from __future__ import annotations

import logging
import random
import select
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

import serial
from pydantic import BaseModel, ConfigDict, Field

from station.clock import Clock
from station.serial_read import read_available

log = logging.getLogger("packstation.scanner")

OnScan = Callable[[str, str, float], None]


class HealthState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ScannerHealth:
    source: str
    state: HealthState
    detail: str = ""
    last_scan_monotonic: float | None = None


OnHealth = Callable[[ScannerHealth], None]

# ------------------------------------------------------------------------------------ config


class _ScannerConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        default="scanner", min_length=1, max_length=64, description="Source name in scans/logs."
    )
    max_code_length: int = Field(
        default=512, ge=16, le=4096, description="Longer codes are dropped and counted."
    )
    reconnect_min_s: float = Field(
        default=0.5, gt=0, le=60, description="First wait before reopening a lost device."
    )
    reconnect_max_s: float = Field(
        default=10.0, gt=0, le=600, description="Longest wait between reopen attempts."
    )


class SerialScannerConfig(_ScannerConfigBase):
    type: Literal["serial"] = Field(description="A scanner on a serial port (RS-232, USB CDC).")
    port: str = Field(
        min_length=1,
        description="pyserial URL or device path: /dev/ttyACM0, /dev/serial/by-id/..., rfc2217://.",
    )
    baudrate: int = Field(default=9600, gt=0, le=4_000_000, description="Line speed in baud.")
    terminator: Literal["cr", "lf", "crlf", "any"] = Field(
        default="any",
        description="What ends a code: CR, LF, CR LF, or any of them (empty lines are ignored).",
    )
    read_timeout_s: float = Field(
        default=0.2, gt=0, le=5, description="Serial read timeout; bounds how long stop() waits."
    )


class EvdevScannerConfig(_ScannerConfigBase):
    type: Literal["evdev"] = Field(description="A keyboard-wedge scanner read through evdev.")
    device: str = Field(
        min_length=1,
        description="Input device path, best /dev/input/by-id/usb-...-event-kbd (stable).",
    )
    grab: bool = Field(
        default=True,
        description="Grab the device so its keystrokes never reach the desktop or a browser.",
    )
    max_key_gap_ms: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description=(
            "Typing-speed heuristic: a code whose keys come further apart than this is dropped "
            "as human typing. None: off."
        ),
    )


ScannerConfig = Annotated[SerialScannerConfig | EvdevScannerConfig, Field(discriminator="type")]

# ----------------------------------------------------------------------------- pure framing

_TERMINATORS: dict[str, tuple[bytes, ...]] = {
    "cr": (b"\r",),
    "lf": (b"\n",),
    "crlf": (b"\r\n",),
    "any": (b"\r", b"\n"),
}


class LineFramer:
    """Bytes in, codes out. Keeps at most `max_length` bytes; a longer line is dropped whole."""

    def __init__(self, terminator: str, max_length: int) -> None:
        self._separators = _TERMINATORS[terminator]
        self._max_length = max_length
        self._buffer = bytearray()
        self._overflowing = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        lines: list[str] = []
        while (end := self._next_separator()) is not None:
            index, width = end
            line, self._buffer = bytes(self._buffer[:index]), self._buffer[index + width :]
            if self._overflowing:  # the tail of a line already counted as dropped
                self._overflowing = False
            elif len(line) > self._max_length:
                self.dropped += 1
            elif line:
                lines.append(line.decode("latin-1"))  # any byte decodes; GS (0x1d) survives
        if len(self._buffer) > self._max_length and not self._overflowing:
            self.dropped += 1
            self._overflowing = True
        if self._overflowing:
            self._buffer.clear()
        return lines

    def _next_separator(self) -> tuple[int, int] | None:
        found = [(i, len(s)) for s in self._separators if (i := self._buffer.find(s)) >= 0]
        return min(found) if found else None


# ----------------------------------------------------------------- pure key-event translation


@dataclass(frozen=True, slots=True)
class KeyEvent:
    code: int  # Linux input event code (linux/input-event-codes.h), e.g. 30 = KEY_A
    value: int  # 0 release, 1 press, 2 autorepeat
    timestamp: float = 0.0


# Linux key codes -> (unshifted, shifted) characters on a US layout.
_ROWS = [
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
]
US_LAYOUT: dict[int, tuple[str, str]] = {
    first + i: (plain[i], shifted[i]) for first, plain, shifted in _ROWS for i in range(len(plain))
}
US_LAYOUT[57] = (" ", " ")  # KEY_SPACE
US_LAYOUT.update(
    {
        code: (char, char)
        for code, char in zip(
            (71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 55, 98),
            "789-456+1230.*/",
            strict=True,
        )
    }
)  # keypad
KEY_ENTER, KEY_KPENTER = 28, 96
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_LEFTCTRL, KEY_RIGHTCTRL, KEY_RIGHTBRACE = 29, 97, 27
_SHIFTS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
_CTRLS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL})
_GROUP_SEPARATOR = "\x1d"  # wedge scanners type it as Ctrl+] (ASCII 0x1d)


class KeystrokeDecoder:
    """Key events in, codes out, with shift, caps lock and Ctrl+] (the GS1 separator)."""

    def __init__(self, max_length: int = 512, max_key_gap_s: float | None = None) -> None:
        self._max_length = max_length
        self._max_key_gap_s = max_key_gap_s
        self._chars: list[str] = []
        self._held: set[int] = set()
        self._caps_lock = False
        self._overflowing = False
        self._too_slow = False
        self._last_press: float | None = None
        self.dropped = 0

    def feed(self, event: KeyEvent) -> str | None:
        """The finished code when `event` is Enter, else None."""
        if event.value == 0:
            self._held.discard(event.code)
            return None
        if event.value != 1:  # autorepeat: a scanner never holds a key
            return None
        self._held.add(event.code)
        self._note_key_gap(event.timestamp)
        if event.code in (KEY_ENTER, KEY_KPENTER):
            return self._finish()
        if event.code == KEY_CAPSLOCK:
            self._caps_lock = not self._caps_lock
        elif (char := self._character(event.code)) is not None:
            self._append(char)
        return None

    def _character(self, code: int) -> str | None:
        if self._held & _CTRLS:
            return _GROUP_SEPARATOR if code == KEY_RIGHTBRACE else None
        pair = US_LAYOUT.get(code)
        if pair is None:
            return None
        shifted = bool(self._held & _SHIFTS)
        if pair[0].isalpha() and self._caps_lock:
            shifted = not shifted
        return pair[shifted]

    def _note_key_gap(self, timestamp: float) -> None:
        if self._max_key_gap_s is not None and self._chars and self._last_press is not None:
            self._too_slow |= timestamp - self._last_press > self._max_key_gap_s
        self._last_press = timestamp

    def _append(self, char: str) -> None:
        if len(self._chars) >= self._max_length:
            self._overflowing = True
        else:
            self._chars.append(char)

    def _finish(self) -> str | None:
        code, rejected = "".join(self._chars), self._overflowing or self._too_slow
        self._chars.clear()
        self._overflowing = self._too_slow = False
        if rejected:
            self.dropped += 1
            return None
        return code or None


def decode_keystrokes(
    events: Iterable[KeyEvent], max_length: int = 512, max_key_gap_s: float | None = None
) -> list[str]:
    """Every code a sequence of key events types. Pure."""
    decoder = KeystrokeDecoder(max_length, max_key_gap_s)
    return [code for event in events if (code := decoder.feed(event)) is not None]


# ------------------------------------------------------------------------------- threads


class _SupervisedInput(ABC):
    """Open, read until it fails, wait with backoff and jitter, reopen; until stop()."""

    def __init__(
        self,
        name: str,
        config: _ScannerConfigBase,
        on_scan: OnScan,
        on_health: OnHealth,
        clock: Clock,
    ) -> None:
        self._name = name
        self._config = config
        self._on_scan = on_scan
        self._on_health = on_health
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scanner-{name}", daemon=True)
        self._health: HealthState | None = None
        self._last_scan: float | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Codes dropped as overlong (or typed too slowly)."""

    @abstractmethod
    def _open(self) -> Any:
        """The opened device; raises OSError or SerialException when it cannot be opened."""

    @abstractmethod
    def _read_codes(self, handle: Any) -> list[str]:
        """Codes completed by one bounded read; raises OSError/SerialException when lost."""

    @abstractmethod
    def _close(self, handle: Any) -> None:
        """Release the device."""

    def _run(self) -> None:
        delay = self._config.reconnect_min_s
        while not self._stop.is_set():
            # A retry while down stays down: a scanner unplugged all night logs one line, not two
            # per attempt.
            if self._health is not HealthState.DOWN:
                self._set_health(HealthState.CONNECTING)
            try:
                handle = self._open()
            except (OSError, serial.SerialException) as exc:
                self._set_health(HealthState.DOWN, str(exc))
            else:
                self._set_health(HealthState.UP)
                delay = self._config.reconnect_min_s
                self._read_until_lost(handle)
            # Jitter keeps several stations from hammering a shared USB hub or server in step.
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._config.reconnect_max_s)

    def _read_until_lost(self, handle: Any) -> None:
        try:
            while not self._stop.is_set():
                for code in self._read_codes(handle):
                    self._last_scan = self._clock.monotonic()
                    self._on_scan(code, self._name, self._last_scan)
        except (OSError, serial.SerialException) as exc:
            self._set_health(HealthState.DOWN, str(exc) or type(exc).__name__)
        finally:
            self._close(handle)

    def _set_health(self, state: HealthState, detail: str = "") -> None:
        if state is self._health:
            return
        self._health = state
        if state is HealthState.DOWN:
            log.warning(
                "scanner down: check its cable and the port in the config; reopened until it works",
                extra={"source": self._name, "detail": detail},
            )
        else:
            log.info("scanner %s", state.value, extra={"source": self._name, "detail": detail})
        self._on_health(ScannerHealth(self._name, state, detail, self._last_scan))


class SerialScanner(_SupervisedInput):
    def __init__(
        self, config: SerialScannerConfig, on_scan: OnScan, on_health: OnHealth, clock: Clock
    ) -> None:
        super().__init__(config.name, config, on_scan, on_health, clock)
        self._serial_config = config
        self._framer = LineFramer(config.terminator, config.max_code_length)

    @property
    def dropped(self) -> int:
        return self._framer.dropped

    def _open(self) -> serial.SerialBase:
        cfg = self._serial_config
        return serial.serial_for_url(cfg.port, baudrate=cfg.baudrate, timeout=cfg.read_timeout_s)

    def _read_codes(self, handle: serial.SerialBase) -> list[str]:
        # read() returns after the timeout with what arrived; a lost port raises SerialException.
        return self._framer.feed(read_available(handle, self._serial_config.port) or b"")

    def _close(self, handle: serial.SerialBase) -> None:
        handle.close()


class InputDevice(Protocol):
    """The part of `evdev.InputDevice` the scanner uses (a fake one stands in for tests)."""

    fd: int

    def grab(self) -> None: ...
    def read(self) -> Iterable[Any]: ...
    def close(self) -> None: ...


_EV_KEY = 1
_POLL_S = 0.2  # bounds how long stop() waits for the reading thread


def _open_evdev(path: str) -> InputDevice:
    import evdev  # Linux only; imported here so the rest of the module works anywhere

    return evdev.InputDevice(path)


class EvdevScanner(_SupervisedInput):
    def __init__(
        self,
        config: EvdevScannerConfig,
        on_scan: OnScan,
        on_health: OnHealth,
        clock: Clock,
        open_device: Callable[[str], InputDevice] = _open_evdev,
    ) -> None:
        super().__init__(config.name, config, on_scan, on_health, clock)
        self._evdev_config = config
        self._open_device = open_device
        gap = config.max_key_gap_ms / 1000 if config.max_key_gap_ms else None
        self._decoder = KeystrokeDecoder(config.max_code_length, gap)

    @property
    def dropped(self) -> int:
        return self._decoder.dropped

    def _open(self) -> InputDevice:
        device = self._open_device(self._evdev_config.device)
        if self._evdev_config.grab:
            try:
                device.grab()
            except OSError:
                device.close()
                raise
        return device

    def _read_codes(self, handle: InputDevice) -> list[str]:
        ready, _, _ = select.select([handle.fd], [], [], _POLL_S)
        if not ready:
            return []
        codes = []
        for event in handle.read():
            if event.type != _EV_KEY:
                continue
            key = KeyEvent(event.code, event.value, event.timestamp())
            if (code := self._decoder.feed(key)) is not None:
                codes.append(code)
        return codes

    def _close(self, handle: InputDevice) -> None:
        handle.close()  # closing the fd also releases the grab


def make_scanner(
    config: SerialScannerConfig | EvdevScannerConfig,
    on_scan: OnScan,
    on_health: OnHealth,
    clock: Clock,
) -> SerialScanner | EvdevScanner:
    if isinstance(config, SerialScannerConfig):
        return SerialScanner(config, on_scan, on_health, clock)
    return EvdevScanner(config, on_scan, on_health, clock)
