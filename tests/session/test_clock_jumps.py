"""Wall-clock jumps during a session: the inactivity timeout and a degraded mode run on the
monotonic clock, and the events' order (station sequence, carton version) comes from the outbox,
so a wall clock stepped back an hour or forward two days changes only the events' `time`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from station.carton_policy import Fallback
from station.codes import BadgeCode, BoxCode, CloseCode, ItemCode
from station.event_shapes import to_event
from station.events import topic_for
from station.outbox import Outbox
from station.session import (
    MISSING_DETECTED,
    MISSING_RESOLVED,
    STATION_FAULT,
    VERIFICATION_RESULT,
    DegradedModeRequested,
    Effect,
    EvidenceReady,
    ManifestLoaded,
    PublishEvent,
    Scanned,
    SessionState,
    Tick,
)

from .drive import ORDER, manifest, new_session, weight_report

STATION, SITE = "pack-01", "dc-1"


def commit_events(outbox: Outbox, effects: list[Effect]) -> list[str]:
    """Commit the step's events through the real outbox, as the daemon does; their kinds."""
    kinds = []
    for effect in effects:
        if isinstance(effect, PublishEvent):
            event_type, data, subject = to_event(effect, STATION, SITE)
            outbox.commit(
                event_type,
                topic_for(event_type, SITE, STATION),
                data,
                source=f"{SITE}/{STATION}",
                subject=subject,
            )
            kinds.append(effect.kind)
    return kinds


def test_wall_clock_jumps_change_neither_timeouts_nor_order(tmp_path: Path) -> None:
    session, clock = new_session(timeout_s=600)
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock)
    start_utc = clock.now_utc()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(DegradedModeRequested(Fallback.SCAN_FOR_RFID, "R9", "reader_down", 900))
    session.handle(Scanned(ORDER))
    session.handle(ManifestLoaded(manifest()))
    session.handle(Scanned(BoxCode("BOX-S")))
    session.handle(Scanned(CloseCode()))

    clock.set_wall(start_utc - timedelta(hours=1))  # stepped back an hour mid-verification
    blocked = session.handle(EvidenceReady(1, (weight_report({"TEA-1": 1}),)))
    assert commit_events(outbox, blocked) == [VERIFICATION_RESULT, MISSING_DETECTED]

    clock.set_wall(start_utc + timedelta(days=2))  # and forward two days
    clock.advance(599)
    # 599 s of monotonic time: neither the inactivity timeout nor the 900 s degraded mode ends,
    # whatever the wall clock says.
    assert session.handle(Tick(clock.monotonic())) == []
    assert session.state is SessionState.BLOCKED and session.degraded is not None

    session.handle(Scanned(ItemCode("TEA-1", 1)))  # the scan restarts the inactivity timer
    session.handle(Scanned(CloseCode()))
    clock.set_wall(start_utc - timedelta(hours=2))
    passed = session.handle(EvidenceReady(2, (weight_report(),)))
    assert commit_events(outbox, passed) == [VERIFICATION_RESULT, MISSING_RESOLVED]

    clock.advance(301)  # 900 s since the request on the monotonic clock: the mode lapses
    lapsed = session.handle(Tick(clock.monotonic()))
    assert commit_events(outbox, lapsed) == [STATION_FAULT]
    assert session.state is SessionState.IDLE  # 302 s since the last scan: still logged in
    clock.advance(299)
    assert session.handle(Tick(clock.monotonic())) != []
    assert session.state is SessionState.LOGGED_OUT

    events = [json.loads(row.payload) for row in outbox.pending(100)]
    assert [e["stationseq"] for e in events] == [1, 2, 3, 4, 5]
    carton = [e for e in events if e.get("subject") == f"{ORDER.order_id}/{ORDER.carton_id}"]
    assert [e["cartonversion"] for e in carton] == [1, 2, 3, 4]
    assert [e["data"]["attempt"] for e in carton] == [1, 1, 2, 2]
    # The wall-clock times went back and forth: consumers order by stationseq/cartonversion.
    times = [e["time"] for e in carton]
    assert times != sorted(times)
    outbox.close()
