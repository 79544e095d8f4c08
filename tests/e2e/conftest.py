"""End-to-end harness: real mosquitto, the daemon as a subprocess, pty simulators, the real sink.

Nothing is mocked. `Harness` bundles one station (rig + daemon process), its broker and a sink,
and offers polling helpers (`wait_for_event`, `wait_for_attempts`, ...) so tests never sleep for
long fixed times. Teardown always kills the daemon and stops the broker; when a test fails, the
daemon's and the broker's logs are printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import MosquittoBroker, MosquittoNotFound
from simulators.daemon_process import (  # noqa: F401  (REPO: re-exported for the e2e tests)
    REPO,
    TIMEOUT_S,
    DaemonProcess,
    query,
    wait_until,
)
from simulators.rig import PAPERWORK_G, SimulatedStation
from simulators.sink import Sink

Event = dict[str, Any]


def event_type(name: str) -> str:
    """`verification.result` -> `com.packstation.verification.result.v1`."""
    return f"com.packstation.{name}.v1"


VERIFICATION = event_type("verification.result")
DETECTED = event_type("missing_item.detected")
RESOLVED = event_type("missing_item.resolved")
FAULT = event_type("station.fault")
# The last effect of every verdict is one of these packer messages.
VERDICT_MESSAGES = frozenset({"verdict.pass", "verdict.block", "verdict.review", "carton.done"})
MISSING_ITEM_EVENTS = frozenset(
    event_type(f"missing_item.{kind}")
    for kind in ("detected", "resolved", "shipped_short", "cancelled")
)


class Harness:
    """One station (rig + daemon), its broker and a reissue-backend sink."""

    def __init__(self, workdir: Path, mode: str = "enforce", **station_options: Any) -> None:
        self.workdir = workdir
        try:
            self.broker = MosquittoBroker(workdir / "broker")
        except MosquittoNotFound as missing:
            pytest.fail(str(missing))
        self.broker.start()
        try:
            self.station = SimulatedStation(
                workdir / "station",
                self.broker.host,
                self.broker.port,
                mode=mode,
                **station_options,
            ).start()
        except BaseException:
            self.broker.stop()
            raise
        self.daemon = DaemonProcess(self.station.config_path, workdir / "daemon.log")
        self.sink_db = workdir / "sink.db"
        self.sink: Sink | None = None
        self.data_dir = self.station.workdir / "data"
        self._attempts_before_run = 0

    # -- components ----------------------------------------------------------------------------

    def start_sink(self) -> Sink:
        """A sink with a fixed client id and database: a new one resumes the last one's session."""
        assert self.sink is None, "sink already running"
        self.sink = Sink(self.broker.host, self.broker.port, db_path=str(self.sink_db))
        self.sink.start()
        return self.sink

    def stop_sink(self) -> None:
        if self.sink is not None:
            self.sink.stop()
            self.sink.close()
            self.sink = None

    def close(self) -> None:
        try:
            self.daemon.kill()
        finally:
            try:
                self.stop_sink()
            finally:
                try:
                    self.station.stop()
                finally:
                    self.broker.stop()

    def start_daemon(self, *, mqtt_up: bool = True) -> None:
        self._attempts_before_run = self.all_attempts()
        self.daemon.start(mqtt_up=mqtt_up)

    def start_with_every_device_up(self) -> None:
        """Sink and daemon running, and every device (camera, readers, outputs) up once."""
        self.start_sink()
        self.start_daemon()
        up = wait_until(
            lambda: any(m.get("msg") == "all devices up" for m in self.daemon.log_messages()), 30
        )
        assert up, self.daemon.log_tail()

    # -- what the sink received ----------------------------------------------------------------

    def events(self, type_: str | None = None) -> list[Event]:
        """Unique events the sink stored, parsed, in arrival order."""
        rows = query(self.sink_db, "SELECT payload FROM events ORDER BY arrival")
        events = [json.loads(payload) for (payload,) in rows]
        return [e for e in events if type_ is None or e["type"] == type_]

    def wait_for_event(
        self,
        type_: str,
        predicate: Callable[[Event], bool] = lambda _event: True,
        timeout: float = TIMEOUT_S,
    ) -> Event:
        """The first received event of `type_` matching `predicate`, waiting for it if need be."""
        assert self.sink is not None, "no sink running"
        found: list[Event] = []

        def arrived(_sink: Sink) -> bool:
            found[:] = [e for e in self.events(type_) if predicate(e)]
            return bool(found)

        if not self.sink.wait_for(arrived, timeout):
            raise AssertionError(
                f"no {type_} matching within {timeout} s; received:\n"
                + "\n".join(_brief(e) for e in self.events())
                + f"\n--- daemon log ---\n{self.daemon.log_tail()}"
            )
        return found[0]

    def wait_for_count(self, count: int, timeout: float = TIMEOUT_S) -> list[Event]:
        assert self.sink is not None, "no sink running"
        if not self.sink.wait_for_events(count, timeout):
            raise AssertionError(
                f"expected {count} events within {timeout} s, got:\n"
                + "\n".join(_brief(e) for e in self.events())
                + f"\n--- daemon log ---\n{self.daemon.log_tail()}"
            )
        return self.events()

    def verdicts(self, order_id: str, carton_id: str = "C1") -> list[Event]:
        return [
            e
            for e in self.events(VERIFICATION)
            if e["data"]["order_id"] == order_id and e["data"]["carton_id"] == carton_id
        ]

    def sink_gaps(self) -> list[object]:
        assert self.sink is not None, "no sink running"
        return list(self.sink.gaps())

    def station_seq(self) -> int:
        """How many events the station has committed (its persisted station sequence)."""
        rows = query(
            self.data_dir / "outbox.sqlite3", "SELECT value FROM counters WHERE key = 'station_seq'"
        )
        return int(rows[0][0]) if rows else 0

    def wait_for_all_delivered(self, timeout: float = TIMEOUT_S) -> list[Event]:
        """Wait until the sink holds as many unique events as the station committed; returns
        them. Once this holds, an event that was never published cannot arrive later."""
        assert self.sink is not None, "no sink running"
        if not self.sink.wait_for(lambda s: len(s.events()) >= self.station_seq(), timeout):
            raise AssertionError(
                f"station committed {self.station_seq()} events, sink has:\n"
                + "\n".join(_brief(e) for e in self.events())
                + f"\n--- daemon log ---\n{self.daemon.log_tail()}"
            )
        return self.events()

    def light_colors(self) -> list[str]:
        """The stack light's colours in this daemon run, from its log."""
        return [m["color"] for m in self.daemon.log_messages() if m.get("msg") == "light set"]

    # -- the station's own files ---------------------------------------------------------------

    def attempts(self, order_id: str, carton_id: str = "C1") -> list[tuple[int, str]]:
        """(attempt, outcome) rows of the evidence store for one carton."""
        rows = query(
            self.data_dir / "evidence.sqlite3",
            "SELECT attempt, outcome FROM attempts WHERE order_id = ? AND carton_id = ?"
            " ORDER BY id",
            (order_id, carton_id),
        )
        return [(int(attempt), str(outcome)) for attempt, outcome in rows]

    def all_attempts(self) -> int:
        rows = query(self.data_dir / "evidence.sqlite3", "SELECT count(*) FROM attempts")
        return int(rows[0][0]) if rows else 0

    def verdicts_finished(self) -> bool:
        """Every attempt recorded in this daemon run has had all its effects carried out: the
        session ends each verdict's effects (record, events, light) with one of these messages."""
        done = sum(1 for m in self.daemon.log_messages() if m.get("msg") in VERDICT_MESSAGES)
        return done >= self.all_attempts() - self._attempts_before_run

    def wait_for_attempts(
        self, order_id: str, carton_id: str = "C1", count: int = 1, timeout: float = TIMEOUT_S
    ) -> list[tuple[int, str]]:
        """Wait until the daemon recorded `count` attempts for the carton and carried out all
        their effects (so the verdict's events are committed to the outbox too)."""
        if not wait_until(
            lambda: len(self.attempts(order_id, carton_id)) >= count and self.verdicts_finished(),
            timeout,
        ):
            raise AssertionError(
                f"{order_id}/{carton_id}: {self.attempts(order_id, carton_id)} after {timeout} s"
                f"\n--- daemon log ---\n{self.daemon.log_tail()}"
            )
        return self.attempts(order_id, carton_id)

    def outbox_depth(self) -> int:
        rows = query(self.data_dir / "outbox.sqlite3", "SELECT count(*) FROM outbox")
        return int(rows[0][0]) if rows else 0

    def outbox_types(self) -> set[str]:
        rows = query(self.data_dir / "outbox.sqlite3", "SELECT DISTINCT event_type FROM outbox")
        return {str(t) for (t,) in rows}

    def wait_for_outbox_types(self, types: set[str], timeout: float = TIMEOUT_S) -> bool:
        """Wait until events of all `types` are committed (and still pending) in the outbox."""
        return wait_until(lambda: types <= self.outbox_types(), timeout)

    def wait_for_outbox_empty(self, timeout: float = TIMEOUT_S) -> None:
        if not wait_until(lambda: self.outbox_depth() == 0, timeout):
            raise AssertionError(
                f"outbox still holds {self.outbox_depth()} events\n{self.daemon.log_tail()}"
            )

    # -- the packer ----------------------------------------------------------------------------

    def pack(self, order_id: str, carton_id: str = "C1", leave_out: tuple[str, ...] = ()) -> None:
        """Pack a carton with the manifest's suggested box and close it (badge A1)."""
        box = self.station.manifest(order_id, carton_id).box_code
        assert box is not None
        self.station.pack("A1", order_id, carton_id, box, leave_out=leave_out)

    def fill(self, order_id: str, carton_id: str = "C1") -> None:
        """Like `pack`, without the close: the carton lies complete on the platter."""
        st = self.station
        manifest = st.manifest(order_id, carton_id)
        assert manifest.box_code is not None
        st.scan("BADGE-A1")
        st.scan(f"{order_id}/{carton_id}")
        time.sleep(0.2)  # the manifest fetch
        st.scan(manifest.box_code)
        st.place(st.box_weight(manifest.box_code) + PAPERWORK_G)
        for sku in st.units_of(manifest):
            st.place(st.unit_weight(sku))
            time.sleep(0.05)

    def wait_for_settled(self) -> None:
        """Wait out the rig's motion, stability and settle windows (plus a poll or two)."""
        t = self.station.timing
        time.sleep(t.motion_s + t.stability_window_s + t.settle_window_s + 4 * t.poll_interval_s)

    def add_and_close(self, sku: str) -> None:
        """Put one more unit in the open carton and close again once the scale has seen it."""
        self.station.add_unit(sku)
        # The close must reach the daemon after the scale reported the motion (poll 0.05 s).
        time.sleep(0.3)
        self.station.close()

    def ship(self) -> None:
        """Take the finished carton off the platter (the next one starts from an empty scale)."""
        self.station.clear_platter()


def _brief(event: Event) -> str:
    data = event.get("data", {})
    return (
        f"seq={event.get('stationseq')} {event.get('type')} {data.get('order_id', '')}"
        f"/{data.get('carton_id', '')} attempt={data.get('attempt', '')}"
        f" outcome={data.get('outcome', data.get('state', ''))} {data.get('component', '')}"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


@pytest.fixture
def make_harness(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Harness]]:
    """Builds harnesses (mode="enforce" by default); tears every one down, whatever happened."""
    built: list[Harness] = []

    def make(mode: str = "enforce", **station_options: Any) -> Harness:
        harness = Harness(tmp_path / f"h{len(built)}", mode=mode, **station_options)
        built.append(harness)
        return harness

    yield make
    report = getattr(request.node, "e2e_report_call", None)
    for harness in built:
        if report is not None and report.failed:
            print(f"--- daemon log ({harness.daemon.log_path}) ---\n{harness.daemon.log_tail(120)}")
            print(f"--- broker log ---\n{harness.broker.log_tail()}")
        harness.close()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    """An enforce-mode station with the broker up, the sink subscribed and the daemon running."""
    h = make_harness()
    h.start_sink()
    h.start_daemon()
    return h
