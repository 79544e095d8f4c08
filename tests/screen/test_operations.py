"""Day-2 pieces without a running station: systemd notify and watchdog, PIN hashing, metrics
exposition, and `packstation status` reading a station's API."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from simulators.systemd_notify import NotifySocket
from station.api.pins import AttemptLimiter, hash_pin, is_pin_hash, verify_pin
from station.api.status_cli import describe
from station.cli import main
from station.daemon import _Health
from station.metrics import Metrics
from station.systemd import notify, watchdog_interval_s

from .conftest import RunningStation, run_station


def test_notify_reaches_the_socket_systemd_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notify("WATCHDOG=1")
        assert listener.recv(64) == b"WATCHDOG=1"


def test_watchdog_pings_at_half_the_interval_and_only_for_us() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    mine = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(mine) == 2.0
    assert watchdog_interval_s({}) is None


def test_the_watchdog_is_not_pinged_while_the_loop_is_behind_its_inbox(
    tmp_path: Path,
    broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    with NotifySocket(tmp_path / "notify") as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", str(systemd.path))
        running = contextlib.contextmanager(run_station)
        with running(tmp_path / "station", broker) as station:
            station.wait_for(lambda: systemd.received().count("WATCHDOG=1") >= 3)
            # Hold the loop while 1,500 inputs pile up in its inbox (a device's health as it
            # already is: no effect), as a burst the loop cannot keep up with would. The
            # daemon's own thread-to-loop hand-over is used, as a device thread would use it.
            daemon, held = station.daemon, threading.Event()
            assert daemon._loop is not None
            daemon._loop.call_soon_threadsafe(held.wait, 10)
            for _ in range(1_500):
                daemon._post(_Health("scale", up=True, detail=""))
            time.sleep(0.5)  # past the next ping: the watchdog checks as soon as the loop runs
            held.set()
            station.wait_for(lambda: "loop unhealthy; watchdog not pinged" in caplog.messages)
            # Once the backlog is worked off, the pings come back.
            pings = systemd.received().count("WATCHDOG=1")
            station.wait_for(lambda: systemd.received().count("WATCHDOG=1") > pings + 2)


def test_pins_are_salted_slow_hashes() -> None:
    first, second = hash_pin("2468"), hash_pin("2468")
    assert first != second and is_pin_hash(first) and "2468" not in first
    assert verify_pin("2468", first) and not verify_pin("2469", first)
    assert not is_pin_hash("2468")


def test_attempt_limiter_forgets_after_the_window() -> None:
    limiter = AttemptLimiter(limit=2, window_s=60)
    limiter.failed(0)
    limiter.failed(10)
    assert limiter.locked(30) and limiter.retry_after_s(30) == 30
    assert not limiter.locked(60)


def test_attempt_limiter_recalls_failures_from_before_a_restart() -> None:
    now_utc = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    ago = [now_utc - timedelta(seconds=s) for s in (10, 250, 301, 4000)]
    limiter = AttemptLimiter(limit=3, window_s=300)
    limiter.recall(ago, now_utc, now=50.0)  # the monotonic clock restarted near zero
    assert not limiter.locked(50.0)  # two within the window
    assert limiter.retry_after_s(50.0) == pytest.approx(50.0)  # the one 250 s ago ages out
    limiter.failed(50.0)
    assert limiter.locked(50.0) and not limiter.locked(100.0)
    # A time ahead of the wall clock (it was stepped back) counts as just now, never as gone.
    ahead = AttemptLimiter(limit=1, window_s=300)
    ahead.recall([now_utc + timedelta(hours=2)], now_utc, now=0.0)
    assert ahead.locked(0.0) and ahead.locked(299.0) and not ahead.locked(300.0)


def test_hash_pin_command_refuses_short_pins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["hash-pin", "--stdin"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("135790\n"))
    assert main(["hash-pin", "--stdin"]) == 0
    assert verify_pin("135790", capsys.readouterr().out.strip())


def test_metrics_render_the_text_format() -> None:
    metrics = Metrics()
    metrics.counter("x_total", "Things.")
    metrics.inc("x_total", {"kind": 'a"b'})
    metrics.histogram("t_seconds", "Time.")
    metrics.observe("t_seconds", 0.3)
    text = metrics.render()
    assert '# TYPE x_total counter\nx_total{kind="a\\"b"} 1' in text
    assert 't_seconds_bucket{le="0.25"} 0' in text and 't_seconds_bucket{le="0.5"} 1' in text
    assert 't_seconds_bucket{le="+Inf"} 1' in text and "t_seconds_count 1" in text


def test_status_command_reads_the_api(
    station: RunningStation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--url", station.base_url]) == 0
    out = capsys.readouterr().out
    assert "pack-01: READY (enforce mode" in out and "up  scale" in out
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 3


def test_describe_names_what_is_down() -> None:
    status = {
        "station_id": "p1",
        "site_id": "s1",
        "ready": False,
        "mode": "shadow",
        "uptime_s": 5,
        "state": "idle",
        "packer": "7",
        "carton": None,
        "weight": {"grams": None, "state": "stale"},
        "outbox_depth": 3,
        "devices": [{"name": "scale", "state": "down", "detail": "no data for 3 s"}],
    }
    text = describe(status)
    assert "NOT READY" in text and "down  scale - no data for 3 s" in text
