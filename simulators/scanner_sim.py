"""Scanner simulators: a serial scanner behind a real pty, and the key events a keyboard-wedge
scanner would type (for the pure translator; no uinput device is needed).

`packstation simulate scanner` prints the pty's slave path (point a serial scanner's `port` at it)
and sends each line read from stdin as one code; `<GS>` in a line becomes the GS1 separator.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import tty

from station.scanner import (
    KEY_ENTER,
    KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
    KEY_RIGHTBRACE,
    US_LAYOUT,
    KeyEvent,
)

_TERMINATORS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}
GS_TOKEN = "<GS>"


class PtySerialScanner:
    """The master side of a pty; the scanner under test opens `slave_path` like a serial port.

    `slave_path` is a private symlink to the pty (as udev's /dev/serial/by-id links are), removed
    before the pty is closed: the kernel reuses pty numbers at once, and a daemon still
    reconnecting to a closed scanner's /dev/pts/N would otherwise open someone else's pty and
    steal its bytes ("multiple access on port").
    """

    def __init__(self, terminator: str = "cr") -> None:
        self._terminator = _TERMINATORS[terminator]
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as a scanner sends them
        self._link_dir = tempfile.mkdtemp(prefix="scanner-sim-")
        self.slave_path = os.path.join(self._link_dir, "tty")
        os.symlink(os.ttyname(self._slave), self.slave_path)

    def send(self, code: str) -> None:
        self.write(code.encode("latin-1") + self._terminator)

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.slave_path)
            os.rmdir(self._link_dir)
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> PtySerialScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _keys_for_characters() -> dict[str, tuple[int, bool]]:
    """character -> (key code, shift held): the layout table turned around."""
    keys: dict[str, tuple[int, bool]] = {}
    # Keypad codes are higher; going downwards lets the main keyboard win for shared characters.
    for code, (plain, shifted) in sorted(US_LAYOUT.items(), reverse=True):
        keys[plain] = (code, False)
        keys.setdefault(shifted, (code, True))
    return keys


_KEYS_FOR_CHAR = _keys_for_characters()


def key_events_for(code: str, start: float = 0.0, key_interval_s: float = 0.002) -> list[KeyEvent]:
    """What a US-layout keyboard-wedge scanner types for `code`, Enter included."""
    events: list[KeyEvent] = []
    now = start

    def tap(key: int, modifier: int | None = None) -> None:
        nonlocal now
        presses = [modifier, key] if modifier is not None else [key]
        events.extend(KeyEvent(k, 1, now) for k in presses)
        events.extend(KeyEvent(k, 0, now) for k in reversed(presses))
        now += key_interval_s

    for char in code:
        if char == "\x1d":
            tap(KEY_RIGHTBRACE, KEY_LEFTCTRL)
            continue
        key, shifted = _KEYS_FOR_CHAR[char]
        tap(key, KEY_LEFTSHIFT if shifted else None)
    tap(KEY_ENTER)
    return events


def add_simulate_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scanner", help="a serial barcode scanner on a pty, fed from stdin"
    )
    parser.add_argument(
        "--terminator", choices=sorted(_TERMINATORS), default="cr", help="what ends each code"
    )
    parser.set_defaults(func=_run_simulate_scanner)


def _run_simulate_scanner(args: argparse.Namespace) -> int:
    with PtySerialScanner(args.terminator) as scanner:
        print(scanner.slave_path, flush=True)
        for line in sys.stdin:
            code = line.rstrip("\r\n").replace(GS_TOKEN, "\x1d")
            if code:
                scanner.send(code)
    return 0
