"""Reissue-backend sink simulator: what the central service does with station events.

Subscribes to every station's event topics (from the topic table) with an MQTT 5 persistent
session (fixed client id, clean_start False, session expiry), so events published while it is
away are queued by the broker. Each event is stored in SQLite before paho acknowledges it (paho
sends the PUBACK after `on_message` returns), de-duplicated by CloudEvents id, and every station's
`stationseq` is checked for gaps. Usable as a library in tests and as `packstation simulate sink`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from station.events import DEFAULT_TOPIC_PREFIX, TOPICS, CloudEvent, parse_event

log = logging.getLogger("packstation.sink")

DEFAULT_CLIENT_ID = "packstation-reissue-sink"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    arrival     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    source      TEXT NOT NULL,
    station_seq INTEGER NOT NULL,
    type        TEXT NOT NULL,
    subject     TEXT,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL
);
-- Every station sequence number seen, duplicates of an id included: a retried logical event may
-- carry a new number, and that number is not missing.
CREATE TABLE IF NOT EXISTS station_seqs (
    source      TEXT NOT NULL,
    station_seq INTEGER NOT NULL,
    PRIMARY KEY (source, station_seq)
);
CREATE TABLE IF NOT EXISTS duplicates (
    arrival  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL
);
"""

# Holes between the lowest and highest number seen per station. Numbers below the first one seen
# are not reported: the sink cannot tell them from events published before it first subscribed.
_GAPS_QUERY = """
SELECT source, previous + 1, station_seq - 1 FROM (
    SELECT source, station_seq,
           LAG(station_seq) OVER (PARTITION BY source ORDER BY station_seq) AS previous
    FROM station_seqs
) WHERE previous IS NOT NULL AND station_seq > previous + 1
ORDER BY source, station_seq
"""


@dataclass(frozen=True)
class SinkEvent:
    event_id: str
    source: str
    station_seq: int
    type: str
    subject: str | None
    topic: str


@dataclass(frozen=True)
class Gap:
    source: str
    first_missing: int
    last_missing: int


class Sink:
    def __init__(
        self,
        host: str,
        port: int,
        db_path: str = ":memory:",
        client_id: str = DEFAULT_CLIENT_ID,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        session_expiry_s: int = 3600,
        echo: Callable[[str], None] | None = None,
        protocol: Literal["5", "3.1.1"] = "5",
    ) -> None:
        self._host = host
        self._is_v5 = protocol == "5"
        self._port = port
        self._session_expiry_s = session_expiry_s
        self._echo = echo
        self._filters = [
            spec.all_stations_filter(topic_prefix) for spec in TOPICS.values() if spec.event_types
        ]
        self._changed = threading.Condition()
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._subscribed = False
        self.invalid_messages = 0
        # A persistent session either way: MQTT 5 clean_start=False + expiry, 3.1.1 clean_session=0.
        self._client = (
            paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
            if self._is_v5
            else paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=paho.MQTTv311,
                clean_session=False,
            )
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 5)

    def start(self, timeout: float = 10.0) -> None:
        """Connect and return once the subscriptions are acknowledged."""
        if self._is_v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(
                self._host, self._port, clean_start=False, properties=properties
            )
        else:
            self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        if not self.wait_for(lambda sink: sink._subscribed, timeout):
            self.stop()
            raise TimeoutError(f"sink did not subscribe at {self._host}:{self._port}")

    def stop(self) -> None:
        """Disconnect; the broker keeps the session and queues events until the next start."""
        self._client.disconnect()
        self._client.loop_stop()
        self._subscribed = False

    def close(self) -> None:
        self._db.close()

    # -- queries -----------------------------------------------------------------------------------

    def events(self) -> list[SinkEvent]:
        """Unique events in arrival order."""
        with self._changed:
            rows = self._db.execute(
                "SELECT event_id, source, station_seq, type, subject, topic FROM events"
                " ORDER BY arrival"
            ).fetchall()
        return [SinkEvent(*row) for row in rows]

    def payloads(self) -> list[dict[str, Any]]:
        """Unique events in arrival order, as the CloudEvents JSON documents received."""
        with self._changed:
            rows = self._db.execute("SELECT payload FROM events ORDER BY arrival").fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def gaps(self) -> list[Gap]:
        with self._changed:
            rows = self._db.execute(_GAPS_QUERY).fetchall()
        return [Gap(*row) for row in rows]

    @property
    def duplicates(self) -> list[str]:
        """Event ids delivered again after their first delivery, in arrival order."""
        with self._changed:
            rows = self._db.execute("SELECT event_id FROM duplicates ORDER BY arrival").fetchall()
        return [event_id for (event_id,) in rows]

    def wait_for(self, predicate: Callable[[Sink], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds (checked after every message); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True

    def wait_for_events(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda sink: len(sink.events()) >= count, timeout)

    # -- paho callbacks (network thread) --------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("sink connection refused", extra={"reason": str(reason_code)})
            return
        client.subscribe([(topic_filter, 1) for topic_filter in self._filters])

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._changed:
            self._subscribed = all(not code.is_failure for code in reason_codes)
            self._changed.notify_all()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            event = parse_event(message.payload)
        except (ValidationError, KeyError, ValueError):
            self.invalid_messages += 1
            log.warning("invalid event dropped", extra={"topic": message.topic})
            return
        with self._changed:
            is_new = self._store(event, message)
            self._changed.notify_all()
        if self._echo is not None:
            self._echo(_describe(event, is_new))

    def _store(self, event: CloudEvent[Any], message: paho.MQTTMessage) -> bool:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR IGNORE INTO station_seqs (source, station_seq) VALUES (?, ?)",
            (event.source, event.stationseq),
        )
        inserted = (
            db.execute(
                "INSERT OR IGNORE INTO events"
                " (event_id, source, station_seq, type, subject, topic, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.source,
                    event.stationseq,
                    event.type.value,
                    event.subject,
                    message.topic,
                    bytes(message.payload),
                ),
            ).rowcount
            == 1
        )
        if not inserted:
            db.execute("INSERT INTO duplicates (event_id) VALUES (?)", (event.id,))
        db.execute("COMMIT")
        return inserted


def _describe(event: CloudEvent[Any], is_new: bool) -> str:
    status = "new" if is_new else "DUPLICATE"
    return (
        f"{status} seq={event.stationseq} source={event.source} type={event.type.value}"
        f" subject={event.subject or '-'} id={event.id}"
    )


# -- command line ------------------------------------------------------------------------------


def add_simulate_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `sink` to the subparsers of `packstation simulate` (the CLI owns the `simulate` group,
    which the other simulators share)."""
    parser = subparsers.add_parser("sink", help="reissue-backend sink: print and check events")
    parser.add_argument("--host", default="localhost", help="broker host")
    parser.add_argument("--port", type=int, default=1883, help="broker port")
    parser.add_argument("--db", default="sink.db", help="SQLite file for received events")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="fixed MQTT client id")
    parser.add_argument("--topic-prefix", default=DEFAULT_TOPIC_PREFIX, help="topic prefix")
    parser.add_argument("--session-expiry", type=int, default=3600, help="session expiry, s")
    parser.set_defaults(func=run_sink)


def run_sink(args: argparse.Namespace) -> int:
    sink = Sink(
        args.host,
        args.port,
        db_path=args.db,
        client_id=args.client_id,
        topic_prefix=args.topic_prefix,
        session_expiry_s=args.session_expiry,
        echo=lambda line: print(line, flush=True),
    )
    # Ctrl-C or SIGTERM stops the sink. They are blocked before paho's thread starts (which
    # inherits the mask) and taken by sigwait in this thread, so the stop does not depend on
    # which thread the kernel hands the signal to, nor on an ignore inherited from a shell's `&`
    # (a CI run once saw the sink not stop within 20 s of Ctrl-C while sleeping in time.sleep).
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for signum in stop_signals:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    sink.start()
    print(f"sink subscribed at {args.host}:{args.port}; Ctrl-C to stop", flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        sink.stop()
    for gap in sink.gaps():
        print(f"GAP source={gap.source} missing seq {gap.first_missing}..{gap.last_missing}")
    print(
        f"{len(sink.events())} events, {len(sink.duplicates)} duplicates, "
        f"{len(sink.gaps())} gaps, {sink.invalid_messages} invalid"
    )
    sink.close()
    return 0


if __name__ == "__main__":
    main_parser = argparse.ArgumentParser(prog="python -m simulators.sink")
    add_simulate_command(main_parser.add_subparsers(dest="command", required=True))
    parsed = main_parser.parse_args()
    raise SystemExit(parsed.func(parsed))
