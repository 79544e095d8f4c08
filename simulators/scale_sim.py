"""A scale simulator that speaks MT-SICS, NCI (standard and ECR) and Toledo continuous output byte
for byte, over a real pseudo-terminal (opened by pyserial like a USB adapter) and over TCP (for
socket:// URLs, like a serial-to-Ethernet converter).

The encoders at the top are pure: tests use them to round-trip readings through the parsers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import selectors
import socket
import sys
import tempfile
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from scale.protocols import toledo
from scale.readings import GRAMS_PER_UNIT
from station.clock import Clock, ScaledClock, SystemClock

SimProtocol = Literal["mtsics", "nci", "toledo"]
NciVariant = Literal["standard", "ecr"]

# Display unit and decimals per protocol, as such scales usually ship.
DEFAULT_DISPLAY: dict[str, tuple[str, int]] = {
    "mtsics": ("g", 1),
    "nci": ("lb", 2),
    "toledo": ("lb", 2),
}
_MAX_COMMAND_BYTES = 256
_IDLE_WAIT_S = 0.02  # longest real-time sleep of the simulator loop: bounds stop() latency
_SERIAL_NUMBER = "SIM0000001"


# --- pure encoders -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Display:
    """What the scale shows right now. `value` and `tare` are in `unit`; `value` is net if tared."""

    value: float
    unit: str = "g"
    decimals: int = 1
    tare: float = 0.0
    moving: bool = False
    overload: bool = False
    underload: bool = False
    at_zero: bool = False


def encode_mtsics(display: Display, reply_id: str = "S") -> bytes:
    if display.overload:
        return f"{reply_id} +\r\n".encode()
    if display.underload:
        return f"{reply_id} -\r\n".encode()
    status = "D" if display.moving else "S"
    value = f"{display.value:.{display.decimals}f}"
    return f"{reply_id} {status} {value:>10} {display.unit}\r\n".encode()


def encode_nci(display: Display, variant: NciVariant) -> bytes:
    ecr = variant == "ecr"
    first = 0x30 | display.moving | display.at_zero << 1
    second = 0x30 | display.underload | display.overload << 1
    status = ("S" if ecr else "") + chr(first) + chr(second)
    if ecr and (display.moving or display.value < 0 or display.overload or display.underload):
        return f"\n{status}\r\x03".encode()  # ECR sends only the status when it cannot weigh
    if display.overload or display.underload:
        weight = ("^" if display.overload else "_") * 7
    elif ecr:
        weight = f" {display.value:0{3 + display.decimals}.{display.decimals}f}"  # " 02.75"
    else:
        weight = f"{display.value:0{5 + display.decimals}.{display.decimals}f}"  # "0002.75"
    unit = display.unit.upper() if ecr else display.unit.lower()
    return f"\n{weight}{unit}\r\n{status}\r\x03".encode()


def encode_toledo(display: Display) -> bytes:
    if display.unit not in ("lb", "kg", "g") or not 0 <= display.decimals <= 5:
        raise ValueError("Toledo continuous output shows lb, kg or g with 0-5 decimals")
    increment_x1 = 0x08
    swa = 0x20 | increment_x1 | (display.decimals + 2)
    out_of_range = display.overload or display.underload
    swb = (
        0x20
        | (toledo.SWB_NET if display.tare else 0)
        | (toledo.SWB_NEGATIVE if display.value < 0 or display.underload else 0)
        | (toledo.SWB_OUT_OF_RANGE if out_of_range else 0)
        | (toledo.SWB_MOTION if display.moving else 0)
        | (toledo.SWB_KG if display.unit == "kg" else 0)
    )
    swc = 0x20 | (toledo.SWC_GRAMS if display.unit == "g" else 0)
    scale = 10**display.decimals
    weight = min(999_999, round(abs(display.value) * scale))
    tare = min(999_999, round(display.tare * scale))
    body = bytes([toledo.STX, swa, swb, swc]) + b"%06d%06d\r" % (weight, tare)
    return body + bytes([toledo.checksum(body)])


# --- the simulated scale -----------------------------------------------------------------------


@dataclass(slots=True)
class _Load:
    """What is on the platter: a ramp from `start_g` to `target_g` over `motion_s`."""

    start_g: float = 0.0
    target_g: float = 0.0
    since: float = 0.0
    motion_s: float = 0.0

    def at(self, now: float) -> tuple[float, bool]:
        """Grams on the platter at `now`, and whether it is still moving."""
        elapsed = now - self.since
        if elapsed >= self.motion_s:
            return self.target_g, False
        progress = elapsed / self.motion_s
        wobble = 0.02 * abs(self.target_g - self.start_g) * math.sin(2 * math.pi * 3 * elapsed)
        return self.start_g + (self.target_g - self.start_g) * progress + wobble, True


class _Endpoint:
    """One connection: the pty or one TCP client, with its command buffer and SIR state."""

    def __init__(
        self,
        read: Callable[[], bytes | None],
        write: Callable[[bytes], bool],
        close: Callable[[], None],
    ) -> None:
        self.read = read  # None: nothing to read now; b"": the peer left
        self.write = write  # False: the peer is gone
        self.close = close
        self.commands = bytearray()
        self.streaming = False  # MT-SICS SIR
        self.awaiting_stable = False  # MT-SICS S waits for a stable weight


class ScaleSimulator:
    """A scale on a pseudo-terminal and/or a TCP port, in its own thread."""

    def __init__(
        self,
        protocol: SimProtocol,
        *,
        nci_variant: NciVariant = "ecr",
        weight_g: float = 0.0,
        capacity_g: float = 15_000.0,
        unit: str | None = None,
        decimals: int | None = None,
        noise_g: float = 0.0,
        seed: int = 0,
        stream_hz: float = 7.0,
        serve_pty: bool = True,
        tcp_port: int | None = 0,
        clock: Clock | None = None,
    ) -> None:
        self.protocol = protocol
        self.nci_variant = nci_variant
        self.capacity_g = capacity_g
        default_unit, default_decimals = DEFAULT_DISPLAY[protocol]
        self.unit = unit or default_unit
        self.decimals = default_decimals if decimals is None else decimals
        self.stream_period_s = 1.0 / stream_hz
        self.clock = clock or SystemClock()
        self._serve_pty = serve_pty
        self._tcp_port = tcp_port
        self._rng = random.Random(seed)
        self._noise_g = noise_g
        self._load = _Load(weight_g, weight_g)
        self._zero_offset_g = 0.0
        self._tare_g = 0.0
        self._silent = False
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._endpoints: dict[int, _Endpoint] = {}
        self._pty_fds: tuple[int, int] | None = None
        self._listener: socket.socket | None = None
        self._link_dir = tempfile.mkdtemp(prefix="scale-sim-")
        self._want_connected = True
        self._connected = False
        self._applied = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pty_device: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ScaleSimulator:
        with self._lock:
            self._open_endpoints()
        self._thread = threading.Thread(target=self._run, name=f"scale-sim-{self.protocol}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            self._close_endpoints()
        self._selector.close()
        with contextlib.suppress(OSError):
            os.unlink(self.pty_path)
            os.rmdir(self._link_dir)

    def __enter__(self) -> ScaleSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pty_path(self) -> str:
        """A stable path to the pty (a symlink, like /dev/serial/by-id) that survives reconnects."""
        return os.path.join(self._link_dir, "tty")

    @property
    def tcp_port(self) -> int | None:
        return self._tcp_port

    @property
    def tcp_url(self) -> str:
        return f"socket://127.0.0.1:{self._tcp_port}"

    # -- controls (any thread) ------------------------------------------------------------------

    def set_weight(self, grams: float, motion_s: float = 0.0) -> None:
        """Put `grams` on the platter; the scale reports motion for `motion_s`, then settles."""
        with self._lock:
            now = self.clock.monotonic()
            current, _ = self._load.at(now)
            self._load = _Load(current, grams, now, motion_s)

    def set_noise(self, sigma_g: float) -> None:
        with self._lock:
            self._noise_g = sigma_g

    def set_silent(self, silent: bool) -> None:
        """Go quiet while the port stays open, like a scale switched off behind a converter."""
        with self._lock:
            self._silent = silent

    def reset(self) -> None:
        """Power cycle: the device tare is gone and streams stop."""
        with self._lock:
            self._reset_device()

    def disconnect(self) -> None:
        """Close the pty and drop TCP clients (the cable is pulled); refuse until reconnect()."""
        self._set_connected(False)

    def reconnect(self) -> None:
        self._set_connected(True)

    def display(self) -> Display:
        with self._lock:
            return self._display()

    # -- internals (simulator thread, or under the lock) ----------------------------------------

    def _set_connected(self, connected: bool) -> None:
        with self._lock:
            self._want_connected = connected
            self._applied.wait_for(lambda: self._connected == connected, timeout=2.0)

    def _display(self) -> Display:
        grams, moving = self._load.at(self.clock.monotonic())
        grams += self._rng.gauss(0.0, self._noise_g) if self._noise_g else 0.0
        gross_g = grams - self._zero_offset_g
        resolution_g = GRAMS_PER_UNIT[self.unit] / 10**self.decimals
        to_unit = 1.0 / GRAMS_PER_UNIT[self.unit]
        value = round((gross_g - self._tare_g) * to_unit, self.decimals)
        return Display(
            value=value + 0.0,  # no "-0.0" on the wire
            unit=self.unit,
            decimals=self.decimals,
            tare=round(self._tare_g * to_unit, self.decimals),
            moving=moving,
            overload=gross_g > self.capacity_g + 9 * resolution_g,
            underload=gross_g < -20 * resolution_g,
            at_zero=abs(gross_g) < resolution_g / 2,
        )

    def _reset_device(self) -> None:
        self._tare_g = 0.0
        for endpoint in self._endpoints.values():
            endpoint.streaming = endpoint.awaiting_stable = False

    def _run(self) -> None:
        next_stream = self.clock.monotonic()
        while not self._stop.is_set():
            with self._lock:
                self._apply_connection_state()
            wait = self.clock.real_seconds(next_stream - self.clock.monotonic())
            for key, _ in self._selector.select(timeout=min(max(wait, 0.0), _IDLE_WAIT_S)):
                with self._lock:
                    self._on_readable(key.fd, key.data)
            with self._lock:
                self._answer_waiting_stable()
                if self.clock.monotonic() >= next_stream:
                    next_stream += self.stream_period_s
                    next_stream = max(next_stream, self.clock.monotonic())
                    self._send_stream_frames()

    def _apply_connection_state(self) -> None:
        if self._want_connected and not self._connected:
            self._open_endpoints()
        elif not self._want_connected and self._connected:
            self._close_endpoints()
        self._applied.notify_all()

    def _open_endpoints(self) -> None:
        if self._serve_pty:
            self._open_pty()
        if self._tcp_port is not None:
            listener = socket.create_server(("127.0.0.1", self._tcp_port))
            listener.setblocking(False)
            self._tcp_port = listener.getsockname()[1]
            self._listener = listener
            self._selector.register(listener.fileno(), selectors.EVENT_READ, None)
        self._connected = True

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass untouched
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        self.pty_device = os.ttyname(slave)
        # Re-point the stable symlink atomically, as udev does when a USB adapter comes back.
        temporary = self.pty_path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        os.symlink(self.pty_device, temporary)
        os.replace(temporary, self.pty_path)

        def read() -> bytes | None:
            try:
                return os.read(master, 4096)
            except OSError:
                return None  # nobody has the slave open: the pty stays, so does the scale

        def write(data: bytes) -> bool:
            # A real scale streams into a cable nobody listens to: drop what does not fit.
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)
            return True

        self._register(master, _Endpoint(read, write, lambda: None))

    def _register(self, fd: int, endpoint: _Endpoint) -> None:
        self._endpoints[fd] = endpoint
        self._selector.register(fd, selectors.EVENT_READ, endpoint)

    def _close_endpoints(self) -> None:
        for fd, endpoint in list(self._endpoints.items()):
            self._drop(fd, endpoint)
        if self._pty_fds is not None:
            # The link goes first, as udev's does when the adapter is pulled: the kernel reuses
            # the pty's number at once, and a daemon reconnecting through a link to a closed
            # /dev/pts/N would open another simulator's pty and steal its bytes.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pty_path)
            for fd in self._pty_fds:
                os.close(fd)
            self._pty_fds = None
        if self._listener is not None:
            self._selector.unregister(self._listener.fileno())
            self._listener.close()
            self._listener = None
        self._connected = False

    def _drop(self, fd: int, endpoint: _Endpoint) -> None:
        self._selector.unregister(fd)
        del self._endpoints[fd]
        endpoint.close()

    def _on_readable(self, fd: int, endpoint: _Endpoint | None) -> None:
        if endpoint is None:
            self._accept()
            return
        if self._endpoints.get(fd) is not endpoint:
            return  # dropped earlier in this round
        data = endpoint.read()
        if data == b"":
            self._drop(fd, endpoint)
        elif data:
            endpoint.commands += data
            self._handle_commands(endpoint)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        client.settimeout(0.5)  # a client that stops reading is dropped, not waited for

        def read() -> bytes | None:
            try:
                return client.recv(4096)
            except TimeoutError:
                return None
            except OSError:
                return b""

        def write(data: bytes) -> bool:
            try:
                client.sendall(data)
            except OSError:
                return False
            return True

        self._register(client.fileno(), _Endpoint(read, write, client.close))

    def _handle_commands(self, endpoint: _Endpoint) -> None:
        *lines, rest = re.split(rb"[\r\n]", bytes(endpoint.commands))
        endpoint.commands = bytearray(rest[-_MAX_COMMAND_BYTES:])
        for line in lines:
            command = line.decode("ascii", "replace").strip()
            if command and not self._silent:
                reply = self._reply(command, endpoint)
                if reply:
                    endpoint.write(reply)

    def _reply(self, command: str, endpoint: _Endpoint) -> bytes | None:
        if self.protocol == "mtsics":
            return self._reply_mtsics(command, endpoint)
        if self.protocol == "nci":
            return self._reply_nci(command)
        return None  # Toledo continuous output ignores the host

    def _reply_mtsics(self, command: str, endpoint: _Endpoint) -> bytes | None:
        name = command.split()[0].upper()
        display = self._display()
        if name in ("S", "SI", "SIR", "@"):
            endpoint.streaming = name == "SIR"
        if name == "SI":
            return encode_mtsics(display)
        if name == "S":
            endpoint.awaiting_stable = True
            return None
        if name == "SIR":
            return None  # the stream starts with the next tick
        if name in ("Z", "T") and display.moving:
            return f"{name} I\r\n".encode()
        if name == "Z":
            self._zero_offset_g += self._gross_g()
            return b"Z A\r\n"
        if name == "T":
            self._tare_g = self._gross_g()
            return encode_mtsics(replace(display, value=self._display().tare), reply_id="T")
        if name == "@":
            self._reset_device()
            return f'I4 A "{_SERIAL_NUMBER}"\r\n'.encode()
        if name == "I4":
            return f'I4 A "{_SERIAL_NUMBER}"\r\n'.encode()
        return b"ES\r\n"

    def _reply_nci(self, command: str) -> bytes:
        if command == "Z":
            self._zero_offset_g += self._gross_g()
        elif command != "W":
            return b"\n?\r\x03"
        return encode_nci(self._display(), self.nci_variant)

    def _gross_g(self) -> float:
        grams, _ = self._load.at(self.clock.monotonic())
        return grams - self._zero_offset_g

    def _answer_waiting_stable(self) -> None:
        display = self._display()
        if display.moving or self._silent:
            return
        for endpoint in self._endpoints.values():
            if endpoint.awaiting_stable:
                endpoint.awaiting_stable = False
                endpoint.write(encode_mtsics(display))

    def _send_stream_frames(self) -> None:
        if self._silent:
            return
        for fd, endpoint in list(self._endpoints.items()):
            frame = self._stream_frame(endpoint)
            if frame is not None and not endpoint.write(frame):
                self._drop(fd, endpoint)

    def _stream_frame(self, endpoint: _Endpoint) -> bytes | None:
        if self.protocol == "toledo":
            return encode_toledo(self._display())
        if self.protocol == "mtsics" and endpoint.streaming:
            return encode_mtsics(self._display())
        return None


# --- `packstation simulate scale` --------------------------------------------------------------

_HELP = """commands: w GRAMS [MOTION_S] | motion [S] | over | under | noise SIGMA_G | silent | talk
          disconnect | reconnect | reset | q"""


def add_simulate_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `scale` to the subparsers of `packstation simulate`."""
    parser = subparsers.add_parser("scale", help="simulate a scale on a pty and TCP")
    parser.add_argument("--protocol", choices=("mtsics", "nci", "toledo"), required=True)
    parser.add_argument("--nci-variant", choices=("standard", "ecr"), default="ecr")
    parser.add_argument("--tcp", type=int, metavar="PORT", help="also listen on 127.0.0.1:PORT")
    parser.add_argument("--weight", type=float, default=0.0, metavar="G")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA_G")
    parser.add_argument("--capacity", type=float, default=15_000.0, metavar="G")
    parser.add_argument("--speed", type=float, default=1.0, help="clock speed factor")
    parser.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    simulator = ScaleSimulator(
        args.protocol,
        nci_variant=args.nci_variant,
        weight_g=args.weight,
        capacity_g=args.capacity,
        noise_g=args.noise,
        tcp_port=args.tcp,
        clock=ScaledClock(args.speed) if args.speed != 1.0 else None,
    )
    with simulator:
        print(f"{args.protocol} scale on {simulator.pty_path} -> {simulator.pty_device}")
        if simulator.tcp_port is not None:
            print(f"  and on {simulator.tcp_url}")
        print(_HELP, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            for line in sys.stdin:
                if not _run_console_command(simulator, line.split()):
                    break
    return 0


def _run_console_command(simulator: ScaleSimulator, words: list[str]) -> bool:
    """Apply one console command; False to quit."""
    if not words:
        return True
    name, numbers = words[0], [float(word) for word in words[1:] if _is_number(word)]
    current = simulator.display()
    current_g = current.value * GRAMS_PER_UNIT[current.unit]
    actions: dict[str, Callable[[], None]] = {
        "w": lambda: simulator.set_weight(numbers[0], *numbers[1:2]),
        "motion": lambda: simulator.set_weight(current_g, numbers[0] if numbers else 2.0),
        "over": lambda: simulator.set_weight(simulator.capacity_g * 1.2),
        "under": lambda: simulator.set_weight(-simulator.capacity_g * 0.1),
        "noise": lambda: simulator.set_noise(numbers[0]),
        "silent": lambda: simulator.set_silent(True),
        "talk": lambda: simulator.set_silent(False),
        "disconnect": simulator.disconnect,
        "reconnect": simulator.reconnect,
        "reset": simulator.reset,
    }
    if name in ("q", "quit"):
        return False
    try:
        actions[name]()
    except (KeyError, IndexError):
        print(_HELP)
        return True
    print(simulator.display(), flush=True)
    return True


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
