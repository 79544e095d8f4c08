"""An LCUS/CH340 USB relay board behind a real pty: it parses the switch frames byte for byte with
the station's own parser, keeps each channel's state, answers the 0xFF status query as multi-
channel boards do, and can be unplugged or have a relay stick (welded contacts) for fault tests.

`packstation simulate relay` prints the pty's path; point a `serial_relay` actuator's `url` at it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass

from station.actuators import relay

_POLL_S = 0.02  # longest wait of the board's loop: bounds how late stop() and unplug() act


@dataclass(frozen=True, slots=True)
class Switched:
    channel: int
    on: bool
    at: float  # time.monotonic() when the frame was parsed


class RelayBoardSimulator:
    def __init__(self, channels: int = 8, answers_status: bool = True) -> None:
        self.channels = channels
        self.answers_status = answers_status
        self.parser = relay.RelayFrameParser()
        self.switched: list[Switched] = []
        self._states = dict.fromkeys(range(1, channels + 1), False)
        self._stuck: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw bytes both ways, no echo
        self.path = os.ttyname(self._slave)

    # -- controls (any thread) ------------------------------------------------------------------

    def start(self) -> RelayBoardSimulator:
        self._thread = threading.Thread(target=self._run, name="relay-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.unplug()

    def __enter__(self) -> RelayBoardSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def states(self) -> dict[int, bool]:
        with self._lock:
            return dict(self._states)

    def stick(self, channel: int, on: bool) -> None:
        """The relay's contacts weld: the channel stays `on` whatever it is told."""
        with self._lock:
            self._stuck[channel] = on
            self._states[channel] = on

    def unplug(self) -> None:
        """The USB cable is pulled: the pty goes away, writes to it fail."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self._close()

    # -- the board ------------------------------------------------------------------------------

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def _run(self) -> None:
        master = self._master
        while not self._stop.is_set():
            readable, _, _ = select.select([master], [], [], _POLL_S)
            if not readable:
                continue
            try:
                data = os.read(master, 256)
            except OSError:
                continue  # nobody has the port open right now
            with self._lock:
                answer = self._handle(data)
            if answer:
                with contextlib.suppress(OSError):
                    os.write(master, answer)

    def _handle(self, data: bytes) -> bytes:
        answer = b""
        for command in self.parser.feed(data):
            if isinstance(command, relay.StatusQuery):
                if self.answers_status:
                    answer += relay.encode_status(self._states)
            elif command.channel in self._states:
                on = self._stuck.get(command.channel, command.on)
                self._states[command.channel] = on
                self.switched.append(Switched(command.channel, command.on, time.monotonic()))
        return answer


def add_simulate_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relay", help="an LCUS USB relay board on a pty; prints each switch"
    )
    parser.add_argument("--channels", type=int, default=8, help="relay channels on the board")
    parser.add_argument("--no-status", action="store_true", help="act like an LCUS-1 board")
    parser.set_defaults(func=_run_simulate_relay)


def _run_simulate_relay(args: argparse.Namespace) -> int:
    with RelayBoardSimulator(args.channels, answers_status=not args.no_status) as board:
        print(board.path, flush=True)
        seen = 0
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(0.2)
                for event in board.switched[seen:]:
                    print(f"CH{event.channel} {'ON' if event.on else 'OFF'}", flush=True)
                seen = len(board.switched)
    return 0
