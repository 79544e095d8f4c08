"""A scale simulator that speaks MT-SICS, NCI (standard and ECR) and Toledo continuous output byte
for byte, over a real pseudo-terminal (opened by pyserial like a USB adapter) and over TCP (for
socket:// URLs, like a serial-to-Ethernet converter).

The encoders at the top are pure: tests use them to round-trip readings through the parsers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from scale.protocols import toledo
from scale.readings import GRAMS_PER_UNIT
from simulators.endpoints import Endpoint, EndpointServer
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


@dataclass(slots=True)
class _Conversation:
    """One connection's protocol state: the command buffer and what the host asked for."""

    commands: bytearray = field(default_factory=bytearray)
    streaming: bool = False  # MT-SICS SIR
    awaiting_stable: bool = False  # MT-SICS S waits for a stable weight


def _conversation(endpoint: Endpoint) -> _Conversation:
    return endpoint.state["scale"]  # type: ignore[return-value]  # set in on_connect


class ScaleSimulator(EndpointServer):
    """A scale on a pseudo-terminal and/or a TCP port, in its own thread."""

    name = "scale-sim"

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
        self._rng = random.Random(seed)
        self._noise_g = noise_g
        self._load = _Load(weight_g, weight_g)
        self._zero_offset_g = 0.0
        self._tare_g = 0.0
        self._next_stream = self.clock.monotonic()
        super().__init__(serve_pty=serve_pty, tcp_port=tcp_port)
        self.name = f"scale-sim-{protocol}"

    # -- controls (any thread) ------------------------------------------------------------------

    def set_weight(self, grams: float, motion_s: float = 0.0) -> None:
        """Put `grams` on the platter; the scale reports motion for `motion_s`, then settles."""
        with self.lock:
            now = self.clock.monotonic()
            current, _ = self._load.at(now)
            self._load = _Load(current, grams, now, motion_s)

    def set_noise(self, sigma_g: float) -> None:
        with self.lock:
            self._noise_g = sigma_g

    def set_silent(self, silent: bool) -> None:
        """Go quiet while the port stays open, like a scale switched off behind a converter."""
        with self.lock:
            self.silent = silent

    def reset(self) -> None:
        """Power cycle: the device tare is gone and streams stop."""
        with self.lock:
            self._reset_device()

    def display(self) -> Display:
        with self.lock:
            return self._display()

    # -- internals (simulator thread, or under the lock) ----------------------------------------

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
        for endpoint in self.endpoints.values():
            conversation = _conversation(endpoint)
            conversation.streaming = conversation.awaiting_stable = False

    # -- protocol (simulator thread, under the lock) ------------------------------------------

    def on_connect(self, endpoint: Endpoint) -> None:
        endpoint.state["scale"] = _Conversation()

    def on_data(self, endpoint: Endpoint, data: bytes) -> None:
        _conversation(endpoint).commands += data
        self._handle_commands(endpoint)

    def wait_s(self) -> float:
        return min(self.clock.real_seconds(self._next_stream - self.clock.monotonic()), 0.02)

    def on_loop(self) -> None:
        self._answer_waiting_stable()
        if self.clock.monotonic() >= self._next_stream:
            self._next_stream = max(
                self._next_stream + self.stream_period_s, self.clock.monotonic()
            )
            self._send_stream_frames()

    def _handle_commands(self, endpoint: Endpoint) -> None:
        conversation = _conversation(endpoint)
        *lines, rest = re.split(rb"[\r\n]", bytes(conversation.commands))
        conversation.commands = bytearray(rest[-_MAX_COMMAND_BYTES:])
        for line in lines:
            command = line.decode("ascii", "replace").strip()
            if command:
                reply = self._reply(command, endpoint)
                if reply:
                    endpoint.write(reply)

    def _reply(self, command: str, endpoint: Endpoint) -> bytes | None:
        if self.protocol == "mtsics":
            return self._reply_mtsics(command, endpoint)
        if self.protocol == "nci":
            return self._reply_nci(command)
        return None  # Toledo continuous output ignores the host

    def _reply_mtsics(self, command: str, endpoint: Endpoint) -> bytes | None:
        name = command.split()[0].upper()
        display = self._display()
        if name in ("S", "SI", "SIR", "@"):
            _conversation(endpoint).streaming = name == "SIR"
        if name == "SI":
            return encode_mtsics(display)
        if name == "S":
            _conversation(endpoint).awaiting_stable = True
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
        if display.moving:
            return
        for endpoint in self.endpoints.values():
            conversation = _conversation(endpoint)
            if conversation.awaiting_stable:
                conversation.awaiting_stable = False
                endpoint.write(encode_mtsics(display))

    def _send_stream_frames(self) -> None:
        for fd, endpoint in list(self.endpoints.items()):
            frame = self._stream_frame(endpoint)
            if frame is not None and not endpoint.write(frame):
                self.drop(fd, endpoint)

    def _stream_frame(self, endpoint: Endpoint) -> bytes | None:
        if self.protocol == "toledo":
            return encode_toledo(self._display())
        if self.protocol == "mtsics" and _conversation(endpoint).streaming:
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
