"""Scenario 7: the disk fills up while the daemon runs. The data directory is a real, small tmpfs
(needs root to mount; skipped otherwise); mid-session a filler file takes every free block. The
station must not pass the carton it cannot record: held (amber, `station.storage_failed` naming
the file, a `storage <file>` fault), the daemon still the same process (no crash, no restart
loop), the carton held again if closed again while the disk is full. Once the filler is deleted
the fault clears by itself, the carton verifies, and afterwards nothing is lost and nothing is
duplicated: the sink holds every committed event once, no gap, the outbox is empty, every carton
has exactly one PASS, recorded in the evidence store.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Harness, wait_until
from tests.reliability.conftest import (
    Scenario,
    assert_delivered_exactly_once,
    carton_stream,
    pass_without_attempt,
)
from tests.reliability.fast_packer import BRISK_TIMING, VERDICTS, FastPacker, delivery_figures

pytestmark = pytest.mark.e2e

TMPFS_SIZE = "2m"  # room for the station's three SQLite files and their WALs, little more
CARTONS = 12
SEED = 7707
HELD = "station.storage_failed"


@contextlib.contextmanager
def small_tmpfs(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(directory)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill_up(filler: Path) -> int:
    """Write zeros into `filler` until the file system is full; returns the bytes written."""
    written = 0
    with contextlib.suppress(OSError), filler.open("wb", 0) as out:
        while True:
            written += out.write(b"\0" * 4096)
    return written


def storage_faults_up(harness: Harness) -> set[str]:
    """Storage devices held (`station.storage_failed` names the file) with no later
    `device.recovered` for them, in this daemon run."""
    up: set[str] = set()
    for message in harness.daemon.log_messages():
        params = message.get("params", {})
        if message.get("msg") == HELD:
            up.add(f"storage {str(params['error']).split(':')[0]}")
        elif message.get("msg") == "device.recovered":
            up.discard(str(params.get("device")))
    return up


def test_a_disk_filling_up_holds_the_carton_and_the_station_recovers_when_space_is_freed(
    make_harness: Scenario, figures: dict[str, Any]
) -> None:
    # The fast packer ships by taking the carton off, never scanning a label: a station whose
    # labels go on elsewhere. (With the final weight check on, the next order's scan would
    # record the last carton as unsealed, and a full disk would hold that step instead.)
    harness = make_harness(timing=BRISK_TIMING, workflow_options="final_weight_check = false")
    with small_tmpfs(harness.data_dir):
        try:
            run(harness, figures)
        finally:
            harness.daemon.kill()  # before the unmount: its files are on the tmpfs


def run(harness: Harness, figures: dict[str, Any]) -> None:
    harness.start_sink()
    harness.start_daemon()
    pid = harness.daemon.process.pid if harness.daemon.process else None
    stream = carton_stream(harness, CARTONS, SEED)
    packer = FastPacker(harness)
    packer.log_in()
    filler = harness.data_dir / "filler"
    held: str | None = None
    held_message: dict[str, Any] = {}
    passed_while_full = 0
    recovery_s = 0.0
    for i, (order_id, missing) in enumerate(stream):
        if i == 2:
            figures["filler_bytes"] = fill_up(filler)
        packer.open_and_close(order_id, missing)
        outcome = packer.wait_for(VERDICTS | {HELD})
        if held is None and outcome["msg"] == HELD:
            held, held_message = order_id, outcome
            # Held at the first step it could not record (the session, an audit record, the
            # verdict's event): no attempt recorded (so no label), amber, the same process.
            assert harness.attempts(order_id) == [], order_id
            assert wait_until(lambda: harness.light_colors()[-1:] == ["amber"], timeout=5)
            # Closed again while the disk is still full: no verdict, still the same process.
            packer.close()
            again = packer.wait_for(VERDICTS | {HELD, "scan.not_now"})
            assert again["msg"] not in VERDICTS, again
            assert harness.attempts(order_id) == [], order_id
            assert harness.daemon.process is not None and harness.daemon.process.pid == pid
            freed_at = time.monotonic()
            filler.unlink()
            assert wait_until(lambda: not storage_faults_up(harness), timeout=30), (
                harness.daemon.log_tail()
            )
            recovery_s = round(time.monotonic() - freed_at, 3)
            # The screen says the station is writing again: the packer scans the box (the step
            # that was undone, if it was that one) and closes.
            harness.station.scan(harness.station.manifest(order_id, "C1").box_code or "")
            packer.close()
            outcome = packer.wait_for(VERDICTS)
        if outcome["msg"] == "verdict.pass":
            # Before the hold: written in space SQLite already held when the disk filled.
            passed_while_full += i >= 2 and held is None
        if missing is not None:
            assert outcome["msg"] == "verdict.block", (order_id, outcome)
            packer.add_and_close(missing)
            outcome = packer.wait_for(VERDICTS)
        assert outcome["msg"] == "verdict.pass", (order_id, outcome)
        packer.ship()

    assert held is not None, f"the disk never filled up ({figures.get('filler_bytes')} bytes)"
    assert harness.daemon.process is not None and harness.daemon.process.pid == pid
    faults = [
        (m["msg"], m["params"].get("error") or m["params"]["device"])
        for m in harness.daemon.log_messages()
        if m.get("msg") == HELD
        or (m.get("msg") == "device.recovered" and m["params"]["device"].startswith("storage"))
    ]
    delivered = harness.wait_for_all_delivered(timeout=30)
    harness.wait_for_outbox_empty()
    assert harness.sink is not None
    figures.update(
        cartons=CARTONS,
        faults={"disk full (real tmpfs)": 1},
        held_carton_message=held_message.get("params", {}),
        storage_faults=faults,
        passed_while_full_before_the_hold=passed_while_full,
        **delivery_figures(harness, delivered),
        wrongly_passed=pass_without_attempt(harness),
        recovery_s=[recovery_s],
    )
    assert faults and faults[0][0] == HELD and faults[-1][0] == "device.recovered", faults
    error = str(held_message["params"]["error"])
    assert "database or disk is full" in error and ".sqlite3" in error, error
    assert_delivered_exactly_once(harness, delivered)
    assert harness.sink.duplicates == []
    assert figures["wrongly_passed"] == 0
    for order_id, missing in stream:
        outcomes = [v["data"]["outcome"] for v in harness.verdicts(order_id)]
        recorded = [o for _, o in harness.attempts(order_id)]
        assert outcomes == recorded == (["PASS"] if missing is None else ["BLOCK", "PASS"]), (
            order_id
        )
