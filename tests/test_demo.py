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
    # The LLRP reader simulator under the platter: the earring beside the box is proven
    # missing by RFID, with its EPC named; the passed carton's EPCs go to the site ledger.
    assert "EAR-SILVER: 1 of 1 missing by RFID" in out
    assert "RFID evidence for EAR-SILVER: EPC 30" in out
    assert "rfid.epcs_shipped" in out
