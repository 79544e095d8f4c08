"""Scenario 4: the outbox file is damaged while the daemon is down (garbage bytes over its header,
or over a b-tree page). The daemon starts anyway (no crash loop), moves the file aside (never
deletes it), says so in its log and in a STORAGE_SET_ASIDE fault naming both files, and verifies
the next carton as usual. The events still pending in the damaged file are not delivered: they
stay in the moved file for salvage (docs/reliability.md)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import FAULT, VERIFICATION
from tests.reliability.conftest import Scenario

pytestmark = pytest.mark.e2e

PAGE = 4096  # SQLite's default page size
GARBAGE = bytes(range(256)) * (PAGE // 256)


@pytest.mark.parametrize("where", ["header", "page"])
def test_a_damaged_outbox_is_moved_aside_and_the_station_carries_on(
    make_harness: Scenario, figures: dict[str, Any], where: str
) -> None:
    harness = make_harness()
    harness.start_sink()
    harness.start_daemon()
    outbox = harness.data_dir / "outbox.sqlite3"

    harness.broker.stop()  # the verdict's events stay pending in the outbox
    harness.pack("ORD-1001")
    assert harness.wait_for_attempts("ORD-1001") == [(1, "PASS")]
    harness.ship()
    assert harness.daemon.stop() == 0  # a clean stop checkpoints the WAL into the file
    pending = harness.outbox_depth()
    assert pending >= 1
    with outbox.open("r+b") as damaged:
        damaged.seek(0 if where == "header" else PAGE)
        damaged.write(GARBAGE[: 100 if where == "header" else PAGE])
    size = outbox.stat().st_size

    harness.broker.start()
    started = time.monotonic()
    harness.start_daemon()
    fault = harness.wait_for_event(FAULT, lambda e: e["data"]["code"] == "STORAGE_SET_ASIDE")
    detected_s = round(time.monotonic() - started, 3)
    (moved,) = harness.data_dir.glob("outbox.sqlite3.damaged-*")
    assert moved.stat().st_size == size  # kept byte for byte
    message = fault["data"]["message"]
    assert str(outbox) in message and str(moved) in message
    logged = [m for m in harness.daemon.log_messages() if m.get("level") == "critical"]
    assert any(m.get("moved_to") == str(moved) for m in logged), logged

    harness.pack("ORD-1002")
    assert harness.wait_for_attempts("ORD-1002") == [(1, "PASS")]
    harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1002")
    # The damaged file's pending events were not delivered: they are in `moved`, not lost.
    assert not [v for v in harness.verdicts("ORD-1001")]
    figures.update(
        cartons=2,
        faults={f"outbox damaged ({where})": 1},
        set_aside_fault_s=detected_s,
        pending_in_damaged_file=pending,
    )
