from __future__ import annotations

import os
import queue
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from simulators.scanner_sim import PtySerialScanner, key_events_for
from station.clock import SystemClock
from station.scanner import (
    KEY_CAPSLOCK,
    KEY_ENTER,
    KEY_LEFTSHIFT,
    EvdevScanner,
    EvdevScannerConfig,
    HealthState,
    KeyEvent,
    LineFramer,
    ScannerConfig,
    SerialScanner,
    SerialScannerConfig,
    decode_keystrokes,
    make_scanner,
)

TYPABLE = string.ascii_letters + string.digits + string.punctuation + " \x1d"
KEY_A = 30
REPO_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("terminator", "chunks", "codes"),
    [
        ("any", [b"AB", b"C\r\nDE", b"F\n", b"\r\n"], ["ABC", "DEF"]),
        ("cr", [b"A\nB\rC"], ["A\nB"]),
        ("lf", [b"AB\r\n"], ["AB\r"]),
        ("crlf", [b"AB\r", b"\nCD\rE\r\n"], ["AB", "CD\rE"]),
        ("any", [b"]d201\x1d17\xe9\r"], ["]d201\x1d17é"]),
    ],
)
def test_line_framer(terminator, chunks, codes):
    framer = LineFramer(terminator, max_length=16)
    assert [code for chunk in chunks for code in framer.feed(chunk)] == codes


def test_overlong_lines_are_dropped_whole_and_counted():
    framer = LineFramer("any", max_length=16)
    assert framer.feed(b"X" * 10) == []
    assert framer.feed(b"X" * 10) == []  # over the bound: the buffer is cleared
    assert framer.feed(b"X" * 30 + b"\rOK\r" + b"Y" * 17 + b"\rOK2\r") == ["OK", "OK2"]
    assert framer.dropped == 2


@given(st.lists(st.binary(max_size=64), max_size=30))
def test_framer_never_raises_and_stays_bounded(chunks):
    framer = LineFramer("any", max_length=32)
    for chunk in chunks:
        assert all(len(code) <= 32 for code in framer.feed(chunk))
        assert len(framer._buffer) <= 32


@given(
    st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=255), min_size=1), max_size=8)
)
def test_framer_returns_what_was_sent(codes):
    framer = LineFramer("crlf", max_length=4096)
    wire = b"".join(code.encode("latin-1") + b"\r\n" for code in codes)
    assert [c for i in range(0, len(wire), 7) for c in framer.feed(wire[i : i + 7])] == codes


# ------------------------------------------------------------------------ key events


@given(st.lists(st.text(TYPABLE, min_size=1, max_size=40), max_size=5))
def test_typed_codes_decode_to_themselves(codes):
    events = [e for code in codes for e in key_events_for(code)]
    assert decode_keystrokes(events) == codes


@given(
    st.lists(
        st.builds(KeyEvent, st.integers(0, 300), st.integers(-1, 3), st.floats(0, 1e6)),
        max_size=200,
    )
)
def test_arbitrary_key_events_never_raise_and_stay_bounded(events):
    assert all(0 < len(code) <= 16 for code in decode_keystrokes(events, max_length=16))


def test_caps_lock_inverts_shift_for_letters_only():
    events = [KeyEvent(KEY_CAPSLOCK, 1), KeyEvent(KEY_CAPSLOCK, 0)]
    events += key_events_for("a1B!")
    assert decode_keystrokes(events) == ["A1b!"]


def test_autorepeat_is_ignored_and_release_ends_shift():
    events = [
        KeyEvent(KEY_LEFTSHIFT, 1),
        KeyEvent(KEY_A, 1),
        KeyEvent(KEY_A, 2),
        KeyEvent(KEY_A, 0),
        KeyEvent(KEY_LEFTSHIFT, 0),
        KeyEvent(KEY_A, 1),
        KeyEvent(KEY_ENTER, 1),
    ]
    assert decode_keystrokes(events) == ["Aa"]


def test_slow_typing_is_dropped_when_the_heuristic_is_on():
    slow = key_events_for("BADGE-1", key_interval_s=0.3)
    fast = key_events_for("BADGE-2", start=10, key_interval_s=0.002)
    assert decode_keystrokes(slow + fast, max_key_gap_s=0.1) == ["BADGE-2"]
    assert decode_keystrokes(slow + fast) == ["BADGE-1", "BADGE-2"]


# --------------------------------------------------------------------------- config


def test_scanner_config_is_a_discriminated_union():
    adapter = TypeAdapter(ScannerConfig)
    assert isinstance(
        adapter.validate_python({"type": "serial", "port": "/dev/x"}), SerialScannerConfig
    )
    evdev = adapter.validate_python({"type": "evdev", "device": "/dev/input/event3"})
    assert isinstance(evdev, EvdevScannerConfig) and evdev.grab
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "serial", "port": "/dev/x", "parity": "E"})
    for model in (SerialScannerConfig, EvdevScannerConfig):
        assert all(f.description for f in model.model_fields.values())


# -------------------------------------------------------------------------- threads


class Recorder:
    def __init__(self) -> None:
        self.scans: queue.Queue[tuple[str, str, float]] = queue.Queue()
        self.health: list[HealthState] = []
        self.changed = threading.Condition()

    def on_scan(self, raw: str, source: str, ts: float) -> None:
        self.scans.put((raw, source, ts))

    def on_health(self, health) -> None:
        with self.changed:
            self.health.append(health.state)
            self.changed.notify_all()

    def wait_for_health(self, state: HealthState, timeout: float = 5.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: state in self.health, timeout), self.health

    def next_codes(self, n: int) -> list[str]:
        return [self.scans.get(timeout=5)[0] for _ in range(n)]


def test_serial_scanner_reads_a_real_pty():
    recorder = Recorder()
    with PtySerialScanner("cr") as pty:
        config = SerialScannerConfig(
            type="serial", port=pty.slave_path, name="bench", max_code_length=32
        )
        scanner = make_scanner(config, recorder.on_scan, recorder.on_health, SystemClock())
        scanner.start()
        try:
            recorder.wait_for_health(HealthState.UP)
            pty.write(b"ORD-A")
            time.sleep(0.05)
            pty.write(b"-1/2\rBADGE-")
            pty.send("P1")
            pty.send("Z" * 100)
            pty.send("CLOSE")
            assert recorder.next_codes(3) == ["ORD-A-1/2", "BADGE-P1", "CLOSE"]
            assert scanner.dropped == 1
        finally:
            scanner.stop()
    assert not scanner._thread.is_alive()


def test_serial_scanner_reports_a_missing_port_once_and_keeps_trying(tmp_path: Path) -> None:
    recorder = Recorder()
    port = tmp_path / "ttyACM0"  # a by-id style link, absent until the scanner is plugged in
    config = SerialScannerConfig(
        type="serial", port=str(port), reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    scanner = SerialScanner(config, recorder.on_scan, recorder.on_health, SystemClock())
    scanner.start()
    try:
        recorder.wait_for_health(HealthState.DOWN)
        time.sleep(0.3)  # a dozen failed attempts
        with PtySerialScanner("cr") as pty:
            port.symlink_to(pty.slave_path)
            recorder.wait_for_health(HealthState.UP)
            pty.send("CLOSE")
            assert recorder.next_codes(1) == ["CLOSE"]
    finally:
        scanner.stop()
    # Health (and its log line) only on a change: not once per failed attempt.
    assert recorder.health[:3] == [HealthState.CONNECTING, HealthState.DOWN, HealthState.UP]


class FakeKeyboard:
    """An evdev device stand-in: a pipe makes its fd readable when events are queued."""

    def __init__(self) -> None:
        self._read_end, self._write_end = os.pipe()
        self.fd = self._read_end
        self.pending: list[object] = []
        self.grabbed = False
        self.unplugged = False

    def type(self, text: str) -> None:
        class Event:
            def __init__(self, key: KeyEvent) -> None:
                self.type, self.code, self.value, self._ts = 1, key.code, key.value, key.timestamp

            def timestamp(self) -> float:
                return self._ts

        self.pending += [Event(k) for k in key_events_for(text)]
        os.write(self._write_end, b"x")

    def unplug(self) -> None:
        self.unplugged = True
        os.write(self._write_end, b"x")

    def grab(self) -> None:
        self.grabbed = True

    def read(self):
        os.read(self._read_end, 1024)
        if self.unplugged:
            raise OSError(19, "No such device")
        events, self.pending = self.pending, []
        return events

    def close(self) -> None:
        os.close(self._read_end)
        os.close(self._write_end)


def test_evdev_scanner_grabs_translates_and_reopens_after_unplug():
    recorder = Recorder()
    keyboards: list[FakeKeyboard] = []

    def open_device(path: str) -> FakeKeyboard:
        assert path == "/dev/input/by-id/usb-scanner-event-kbd"
        keyboards.append(FakeKeyboard())
        return keyboards[-1]

    config = EvdevScannerConfig(
        type="evdev", device="/dev/input/by-id/usb-scanner-event-kbd", reconnect_min_s=0.01
    )
    scanner = EvdevScanner(config, recorder.on_scan, recorder.on_health, SystemClock(), open_device)
    scanner.start()
    try:
        recorder.wait_for_health(HealthState.UP)
        keyboards[0].type("]C101\x1d10LOT")
        assert recorder.next_codes(1) == ["]C101\x1d10LOT"]
        assert keyboards[0].grabbed
        keyboards[0].unplug()
        recorder.wait_for_health(HealthState.DOWN)
        deadline = time.monotonic() + 5
        while len(keyboards) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        keyboards[-1].type("CLOSE")
        assert recorder.next_codes(1) == ["CLOSE"]
    finally:
        scanner.stop()


SIMULATE = """
import argparse, sys
from simulators.scanner_sim import add_simulate_command
parser = argparse.ArgumentParser()
add_simulate_command(parser.add_subparsers())
args = parser.parse_args(["scanner", "--terminator", "crlf"])
sys.exit(args.func(args))
"""


def test_simulate_scanner_command_sends_stdin_lines_over_its_pty():
    sim = subprocess.Popen(
        [sys.executable, "-c", SIMULATE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    recorder = Recorder()
    try:
        port = sim.stdout.readline().strip()
        config = SerialScannerConfig(type="serial", port=port, terminator="crlf")
        scanner = SerialScanner(config, recorder.on_scan, recorder.on_health, SystemClock())
        scanner.start()
        recorder.wait_for_health(HealthState.UP)
        sim.stdin.write("ORD-A-1\n]C101<GS>10LOT\n")
        sim.stdin.flush()
        assert recorder.next_codes(2) == ["ORD-A-1", "]C101\x1d10LOT"]
        scanner.stop()
    finally:
        sim.stdin.close()
        assert sim.wait(timeout=5) == 0
