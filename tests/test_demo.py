"""`packstation demo` runs the whole station on simulated hardware and exits 0 when the backend
received every event exactly once. Run as a real subprocess, the way `make demo` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_delivers_every_event_once(broker: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "station.cli", "demo", "--cartons", "5", "--broker", broker],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "missing_item.detected" in out and "missing_item.resolved" in out
    assert "BLOCK [RED]" in out and "PASS [GREEN]" in out
    assert "sequence gaps:       0" in out
    assert "every event delivered once" in out
