"""Fault suite harness: the e2e harness (real mosquitto, the daemon as a subprocess, pty
simulators, the real sink), plus fault injection and a JSON summary of the figures.

Every test adds its figures with the `figures` fixture; at the end of the session they are
written to `$PACKSTATION_RELIABILITY_JSON` or `tests/reliability/last-run.json` (ignored by git),
which docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import MosquittoBroker
from station.domain import Manifest, ManifestLine
from tests.e2e.conftest import (  # noqa: F401  (fixtures and the report hook, re-exported)
    VERIFICATION,
    Harness,
    make_harness,
    pytest_runtest_makereport,
    query,
    wait_until,
)

SUMMARY_DEFAULT = Path(__file__).with_name("last-run.json")

# mosquitto saves its in-memory database (sessions, queued messages) only every
# `autosave_interval` seconds (default 1800) and at a clean shutdown. A SIGKILLed broker loses
# what changed since the last save; the suite's broker saves after every change instead
# (see docs/reliability.md, "broker persistence").
AUTOSAVE_EVERY_CHANGE = "autosave_on_changes true\nautosave_interval 1\n"

# Templates for the carton stream: (template order, the unit left out of a short carton).
TEMPLATES = (("ORD-1001", "MUG-BLUE"), ("ORD-1002", "BOOK-COOK"))


def sigkill_broker(broker: MosquittoBroker) -> None:
    """SIGKILL mosquitto: no persistence written at exit (a power cut, for the broker)."""
    process: subprocess.Popen[bytes] | None = broker._process  # no public handle
    assert process is not None and process.poll() is None, "broker not running"
    process.kill()
    process.wait()
    broker.stop()  # only tidies up: the process is gone


def save_on_every_change(harness: Harness) -> None:
    """Restart the harness's (fresh) broker with autosave after every change."""
    broker = harness.broker
    broker.stop()
    with broker.config_path.open("a") as config:
        config.write(AUTOSAVE_EVERY_CHANGE)
    broker.start()


def carton_stream(harness: Harness, count: int, seed: int) -> list[tuple[str, str | None]]:
    """`count` fresh orders (ORD-2001...) as (order id, unit left out or None); a third short."""
    rng = random.Random(seed)
    short = set(rng.sample(range(count), count // 3))
    stream = []
    for i in range(count):
        template_id, missing = TEMPLATES[rng.randrange(len(TEMPLATES))]
        template = harness.station.manifest(template_id, "C1")
        order_id = f"ORD-{2001 + i}"
        lines = tuple(ManifestLine(**line.model_dump()) for line in template.lines)
        manifest = Manifest(**{**template.model_dump(), "order_id": order_id, "lines": lines})
        harness.station.write_manifest(manifest)
        stream.append((order_id, missing if i in short else None))
    return stream


def verify_carton(harness: Harness, order_id: str, missing: str | None) -> None:
    """Pack one carton; a short one is blocked, fixed and closed again. Then ship it."""
    if missing is None:
        harness.pack(order_id)
        assert harness.wait_for_attempts(order_id, timeout=15) == [(1, "PASS")]
    else:
        harness.pack(order_id, leave_out=(missing,))
        assert harness.wait_for_attempts(order_id, timeout=15) == [(1, "BLOCK")]
        harness.add_and_close(missing)
        assert harness.wait_for_attempts(order_id, count=2, timeout=15) == [
            (1, "BLOCK"),
            (2, "PASS"),
        ]
    harness.ship()


def pass_without_attempt(harness: Harness) -> int:
    """PASS verdicts the sink received with no PASS attempt in the station's evidence store."""
    recorded = {
        (order, carton, int(attempt))
        for order, carton, attempt in query(
            harness.data_dir / "evidence.sqlite3",
            "SELECT order_id, carton_id, attempt FROM attempts WHERE outcome = 'PASS'",
        )
    }
    return sum(
        1
        for e in harness.events(VERIFICATION)
        if e["data"]["outcome"] == "PASS"
        and (e["data"]["order_id"], e["data"]["carton_id"], e["data"]["attempt"]) not in recorded
    )


def assert_delivered_exactly_once(harness: Harness, delivered: list[dict[str, Any]]) -> None:
    """The sink holds one copy of every event the station committed (after de-duplication by
    id), with no gap in the station sequence, and the station's outbox is empty."""
    committed = harness.station_seq()
    assert sorted(e["stationseq"] for e in delivered) == list(range(1, committed + 1))
    assert len({e["id"] for e in delivered}) == len(delivered) == committed
    assert harness.sink_gaps() == []
    assert harness.outbox_depth() == 0


def timed_drain(harness: Harness, timeout: float = 30.0) -> float:
    """Seconds until the outbox is empty (call right after the broker is back)."""
    started = time.monotonic()
    harness.wait_for_outbox_empty(timeout)
    return round(time.monotonic() - started, 3)


def _summary_path() -> Path:
    return Path(os.environ.get("PACKSTATION_RELIABILITY_JSON", SUMMARY_DEFAULT))


_FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with its figures; kept under the test's name in the summary."""
    entry: dict[str, Any] = {}
    yield entry
    report = getattr(request.node, "e2e_report_call", None)
    entry["passed"] = bool(report is not None and report.passed)
    _FIGURES[request.node.name] = entry


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _FIGURES:
        return
    summary = {"tests": _FIGURES, "totals": _totals(_FIGURES)}
    _summary_path().write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _totals(tests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    faults: dict[str, int] = {}
    totals: dict[str, Any] = {}
    recovery: list[float] = []
    for entry in tests.values():
        for kind, n in entry.get("faults", {}).items():
            faults[kind] = faults.get(kind, 0) + n
        for key in (
            "events_produced",
            "events_delivered",
            "duplicates_removed",
            "gaps",
            "wrongly_passed",
            "cartons",
        ):
            totals[key] = totals.get(key, 0) + entry.get(key, 0)
        recovery += entry.get("recovery_s", [])
    totals["faults"] = faults
    if recovery:
        ordered = sorted(recovery)
        totals["recovery_s"] = {
            "n": len(ordered),
            "min": ordered[0],
            "median": ordered[len(ordered) // 2],
            "max": ordered[-1],
        }
    return totals


Scenario = Callable[..., Harness]
