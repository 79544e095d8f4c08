"""Clock offset: chrony's and HTTP's answers parsed (and fuzzed), a real HTTP reference measured,
and the daemon's fault when the station's clock is off."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.rig import SimulatedStation
from station.clock_offset import (
    ClockCheckConfig,
    ClockMonitor,
    ClockReadError,
    http_date_offset,
    http_reference,
    parse_chrony_tracking,
    parse_http_date,
)
from station.session import PublishEvent
from tests.test_daemon import InProcessDaemon

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# `chronyc -c tracking` of a station whose clock is 1.5 ms slow of NTP time.
CHRONY = (
    "C0A80001,ntp1.example,3,1772438400.123456789,0.001500000,-0.000012000,0.000020000,"
    "-12.345,-0.001,0.020,0.004000000,0.001000000,64.2,Normal\n"
)


def test_chrony_tracking_gives_the_offset_and_its_error_bound() -> None:
    offset = parse_chrony_tracking(CHRONY, NOW)
    assert offset.offset_s == pytest.approx(-0.0015)  # slow: behind the reference
    assert offset.uncertainty_s == pytest.approx(0.004 / 2 + 0.001)
    assert offset.source == "chrony (ntp1.example)" and not offset.beyond(0.5)


def test_an_unsynchronised_chrony_is_no_reference() -> None:
    with pytest.raises(ClockReadError, match="not synchronised"):
        parse_chrony_tracking(CHRONY.replace("Normal", "Not synchronised"), NOW)


@given(st.text())
def test_any_chronyc_output_parses_or_is_refused_with_a_reason(text: str) -> None:
    try:
        offset = parse_chrony_tracking(text, NOW)
    except ClockReadError as exc:
        assert str(exc)
    else:
        assert offset.uncertainty_s >= 0


@given(st.lists(st.floats(allow_nan=True) | st.text(max_size=8), min_size=14, max_size=14))
def test_chrony_like_rows_parse_or_are_refused(fields: list[object]) -> None:
    line = ",".join(str(f).replace(",", "") for f in fields)
    try:
        offset = parse_chrony_tracking(line, NOW)
    except ClockReadError:
        return
    assert abs(offset.offset_s) < 1e9 and offset.uncertainty_s >= 0


@given(st.text())
def test_any_date_header_parses_or_is_refused(text: str) -> None:
    try:
        seconds = parse_http_date(text)
    except ClockReadError as exc:
        assert "HTTP Date" in str(exc)
    else:
        assert math.isfinite(seconds)


def test_http_dates_in_every_form_the_rfc_allows() -> None:
    expected = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC).timestamp()
    for form in (
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ):
        assert parse_http_date(form) == expected, form


class _AheadHandler(BaseHTTPRequestHandler):
    ahead_s = 0.0
    dateless = False  # answers without a Date header: the reference is no use any more

    def do_HEAD(self) -> None:
        if self.dateless:
            self.send_response_only(404)
        else:
            self.send_response(404)  # a missing page still tells the time
        self.send_header("Content-Length", "0")
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + self.ahead_s, usegmt=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def reference() -> Iterator[tuple[str, type[_AheadHandler]]]:
    handler = type("Handler", (_AheadHandler,), {"ahead_s": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def test_the_http_date_of_a_server_measures_the_offset(reference) -> None:
    url, handler = reference
    in_step = http_date_offset(url)
    assert abs(in_step.offset_s) <= in_step.uncertainty_s and in_step.uncertainty_s >= 0.5
    handler.ahead_s = 30.0  # the server is 30 s ahead: the station is 30 s behind
    behind = http_date_offset(url)
    assert behind.offset_s == pytest.approx(-30.0, abs=1.0) and behind.beyond(2.0)
    assert behind.source.startswith("http 127.0.0.1:")


def test_no_reference_at_all_is_said_plainly() -> None:
    monitor = ClockMonitor(ClockCheckConfig(reference="http"), None)
    with pytest.raises(ClockReadError, match="set \\[clock\\] http_url"):
        monitor.measure()
    assert http_reference("https://wms.example:8443/api/{order_id}/{carton_id}") == (
        "https://wms.example:8443/"
    )
    # Credentials in the manifest URL never reach the clock's logs, status or fault events.
    assert http_reference("https://svc:s3cret@wms.example/o/{order_id}") == "https://wms.example/"


def test_a_station_clock_far_off_is_a_fault_in_status_and_metrics(
    tmp_path: Path, broker, reference
) -> None:
    url, handler = reference
    handler.ahead_s = 120.0
    extra = f'[clock]\nreference = "http"\nhttp_url = "{url}"\nmax_offset_s = 2.0\ninterval_s = 5\n'
    with (
        SimulatedStation(tmp_path / "st", broker.host, broker.port, extra_config=extra) as station,
        InProcessDaemon(station.config_path) as running,
    ):
        assert running.wait_for(
            lambda fx: any(
                isinstance(e, PublishEvent)
                and e.kind == "station.fault"
                and e.data["device"] == "clock offset"
                for e in fx
            )
        )
        status = running.daemon.status()
        assert status.clock is not None and status.clock.offset_s == pytest.approx(-120, abs=1)
        down = {d.name: d.detail for d in status.devices_down}
        assert "fix the station's NTP" in down["clock offset"]
        assert "packstation_clock_offset_seconds -1" in running.daemon.metrics.render()

        # The reference stops telling the time: the clock stays known to be off (retention
        # must not judge ages by it again), and the fault stays raised.
        handler.dateless = True
        time.sleep(6)
        status = running.daemon.status()
        assert status.clock is not None and status.clock.offset_s == pytest.approx(-120, abs=1)
        assert "clock offset" in {d.name for d in status.devices_down}
