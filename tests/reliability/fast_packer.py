"""A brisk packer for the long fault runs: the same real path as `Harness.pack` (the daemon as a
subprocess, scans over the scanner's pty, weights from the pty scale, verdicts into the outbox
and over mosquitto to the sink), with the waiting cut to what the station really needs.

Where the time of `Harness.pack` + `wait_for_attempts` went (30 cartons, a third short: 1.6 s
a carton on the 2-core VM): fixed sleeps (0.2 s for the manifest, 0.05 s per unit, 0.3 s before a
second close), the rig's scale windows (motion 0.25 s + stability 0.3 s + settle 0.2 s, waited
out by every verdict), and polls that re-read the whole daemon log and both SQLite files every
50 ms (their cost grows with the run: quadratic over 1,000 cartons). Here the scale windows
are short (`BRISK_TIMING`), the packer waits for the daemon's own log lines (read incrementally)
instead of sleeping, and the box and the units go on the platter in one placement at their
catalog means, so that the weight channel's own spread (z = 3: about one false alarm in a few
hundred complete cartons) cannot fail a run that is about delivery; docs/accuracy.md measures
the weight channel.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from simulators.rig import PAPERWORK_G, RigTiming
from tests.e2e.conftest import Event, Harness
from tests.reliability.conftest import Scenario, carton_stream, save_on_every_change

# The daemon polls the scale every 20 ms; a verdict needs 30 ms of motion to pass, then 60 ms
# still and 30 ms settled (about 0.15 s from the placement with the polls).
BRISK_TIMING = RigTiming(
    stability_window_s=0.06, settle_window_s=0.03, motion_s=0.03, poll_interval_s=0.02
)
# A close sent sooner than this after a placement could meet a reading taken before it (one
# poll in flight) and be decided on the old weight; three polls rule that out.
CLOSE_AFTER_PLACEMENT_S = 3 * BRISK_TIMING.poll_interval_s
VERDICTS = frozenset({"verdict.pass", "verdict.block", "verdict.review", "carton.done"})


class LogFollower:
    """The daemon's JSON log lines, read from where the last read stopped (across restarts:
    every run appends to the same file)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def new_messages(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        messages = []
        for line in lines:
            try:
                messages.append(json.loads(line))
            except ValueError:
                continue  # not one of the daemon's JSON lines (a traceback, a warning)
        return messages


class FastPacker:
    """Packs cartons on a harness's station, one after the other, as fast as it lets go."""

    def __init__(self, harness: Harness, badge: str = "A1", timeout: float = 15.0) -> None:
        self.harness = harness
        self.badge = badge
        self.timeout = timeout
        self.log = LogFollower(harness.daemon.log_path)
        self._placed_at = 0.0

    def wait_for(self, names: frozenset[str]) -> dict[str, Any]:
        """The next daemon log line whose `msg` is one of `names` (lines before it are read)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for message in self.log.new_messages():
                if message.get("msg") in names:
                    return message
            process = self.harness.daemon.process
            if process is not None and process.poll() is not None:
                break
            time.sleep(0.005)
        raise AssertionError(
            f"no {sorted(names)} from the daemon within {self.timeout} s"
            f"\n--- daemon log ---\n{self.harness.daemon.log_tail()}"
        )

    def skip_log(self) -> None:
        """Read on from the log's end: what a killed daemon wrote is not an answer to the next
        scan."""
        self.log = LogFollower(self.harness.daemon.log_path)

    def log_in(self) -> None:
        self.harness.station.scan(f"BADGE-{self.badge}")
        self.wait_for(frozenset({"login.welcome", "login.already"}))

    def open_and_close(self, order_id: str, missing: str | None) -> None:
        """Put the box and the carton's units (less `missing`) on the platter, scan the order
        and the box, and close. Returns once the close is sent; `verdict` waits for the answer."""
        station = self.harness.station
        manifest = station.manifest(order_id, "C1")
        assert manifest.box_code is not None
        units = station.units_of(manifest)
        if missing is not None:
            units.remove(missing)
        grams = station.catalog.boxes[manifest.box_code].tare_g + PAPERWORK_G
        grams += sum(self._unit_g(sku) for sku in units)
        self._place(grams)
        station.scan(f"{order_id}/C1")
        self.wait_for(frozenset({"box.scan"}))  # the manifest is in: the box is asked for
        station.scan(manifest.box_code)
        self.close()

    def add_and_close(self, sku: str) -> None:
        self._place(self._unit_g(sku))
        self.close()

    def verdict(self) -> str:
        """`verdict.pass`, `verdict.block`, ...: the last effect of the verdict on the close."""
        return str(self.wait_for(VERDICTS)["msg"])

    def ship(self) -> None:
        self.harness.station.clear_platter()

    def _unit_g(self, sku: str) -> float:
        grams = self.harness.station.catalog.items[sku].unit_weight_g
        assert grams is not None, f"{sku} has no unit weight"
        return grams

    def _place(self, grams: float) -> None:
        self.harness.station.place(grams)
        self._placed_at = time.monotonic()

    def close(self) -> None:
        """Scan CLOSE, once the scale has had time to report the last placement."""
        time.sleep(max(0.0, self._placed_at + CLOSE_AFTER_PLACEMENT_S - time.monotonic()))
        self.harness.station.close()


def brisk_station(
    make_harness: Scenario, cartons: int, seed: int, *, broker_saves_every_change: bool = False
) -> tuple[Harness, list[tuple[str, str | None]], FastPacker]:
    """A station on `BRISK_TIMING` with its sink and daemon running, `cartons` manifests written
    (`carton_stream`), and a packer logged in."""
    harness = make_harness(timing=BRISK_TIMING)
    if broker_saves_every_change:
        save_on_every_change(harness)
    harness.start_sink()  # the sink's persistent session exists from here on
    harness.start_daemon()
    stream = carton_stream(harness, cartons, seed)
    packer = FastPacker(harness)
    packer.log_in()
    return harness, stream, packer


def delivery_figures(harness: Harness, delivered: list[Event]) -> dict[str, int]:
    """What the station committed and what the sink made of it, for the suite's summary."""
    assert harness.sink is not None, "no sink running"
    return {
        "events_produced": harness.station_seq(),
        "events_delivered": len(delivered),
        "duplicates_removed": len(harness.sink.duplicates),
        "gaps": len(harness.sink_gaps()),
    }
