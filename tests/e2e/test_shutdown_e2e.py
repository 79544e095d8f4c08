"""`packstation run` under systemd's protocol, as the unit runs it (Type=notify, WatchdogSec):
READY=1 once the loop runs, WATCHDOG=1 pings, and on SIGTERM: STOPPING=1, the outbox flushed
(events the broker could not take while it hung go out before the exit), retained "offline"
published, exit status 0."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulators.systemd_notify import NotifySocket
from station.events import Availability, AvailabilityState, TopicKey, topic_for
from tests.e2e.conftest import VERIFICATION, Harness, wait_until
from tests.mqtt.conftest import retained_payload

pytestmark = pytest.mark.e2e

WATCHDOG_USEC = 400_000  # pings every 0.2 s


def test_sigterm_flushes_the_outbox_publishes_offline_and_tells_systemd(
    make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    harness = make_harness()
    with NotifySocket(tmp_path / "notify") as notify_socket:
        stop_under_systemd(harness, notify_socket)
    topic = topic_for(TopicKey.AVAILABILITY, harness.station.site_id, harness.station.station_id)
    payload = retained_payload(harness.broker, topic)
    assert payload is not None
    assert Availability.model_validate_json(payload).state is AvailabilityState.OFFLINE
    assert '"msg": "station stopped"' in harness.daemon.log_path.read_text()


def stop_under_systemd(harness: Harness, notify_socket: NotifySocket) -> None:
    """Start the daemon as systemd would, let the broker hang while a carton is verified, send
    SIGTERM, and check the outbox was flushed once the broker answered again."""
    harness.start_sink()
    environment = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    harness.daemon.start(environment=environment)
    pinged = wait_until(lambda: notify_socket.received().count("WATCHDOG=1") >= 3, 10)
    assert pinged, notify_socket.received()
    assert notify_socket.received()[0] == "READY=1"

    # The broker hangs (stopped, its connections open): the verdict's events wait in the outbox,
    # and are still waiting when systemd stops the station.
    broker_pid = harness.broker.pid
    process = harness.daemon.process
    assert broker_pid is not None and process is not None
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        harness.pack("ORD-1001")
        assert harness.wait_for_attempts("ORD-1001") == [(1, "PASS")]
        assert harness.outbox_depth() >= 1
        process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "STOPPING=1" in notify_socket.received(), 10)
        time.sleep(1.0)  # the shutdown is flushing into a broker that does not answer
        assert process.poll() is None and harness.outbox_depth() >= 1
    finally:
        os.kill(broker_pid, signal.SIGCONT)
    # The broker answers again within the flush window (5 s): the events go out, then offline.
    assert process.wait(15) == 0

    assert notify_socket.received()[-1] == "STOPPING=1"
    assert harness.outbox_depth() == 0, harness.daemon.log_tail()
    harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1001")
