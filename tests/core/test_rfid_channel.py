"""The RFID channel on a manual clock, without reader threads: the decisive window, reader
health, the ledger fed by verdicts, and the metrics a site tunes from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rfid.device import ReaderHealth
from rfid.reads import TagRead
from simulators.rfid_sim import sgtin_for_gtin
from simulators.rig import EXAMPLE_CATALOG
from station.catalog_file import load_catalog
from station.channels.base import ChannelContext
from station.channels.rfid import REJECTED, RSSI_READS, RfidChannel
from station.clock import ManualClock
from station.domain import Manifest
from station.metrics import Metrics
from station.rfid_check import RfidCheckConfig
from station.session import CollectEvidence
from station.verification import ChannelState, FindingStatus, Outcome
from tests.evidence.factories import attempt

CATALOG = load_catalog(EXAMPLE_CATALOG)
EAR = "EAR-SILVER"
MANIFEST = Manifest.model_validate(
    {
        "order_id": "ORD-9",
        "carton_id": "C1",
        "version": 1,
        "lines": [
            {"line_id": "1", "sku": EAR, "quantity": 1},
            {"line_id": "2", "sku": "MUG-BLUE", "quantity": 1},
        ],
    }
)
CONFIG = RfidCheckConfig.model_validate(
    {
        "readers": [{"protocol": "llrp", "host": "127.0.0.1", "name": "platter"}],
        "window": {"antennas": [{"antenna": 1, "rssi_floor_dbm": -55}], "min_seen_count": 2},
        "window_s": 1.0,
    }
)


def ear_tag(serial: int) -> bytes:
    return sgtin_for_gtin(CATALOG.items[EAR].barcodes[0].code, serial)


def channel(tmp_path: Path, clock: ManualClock) -> tuple[RfidChannel, list[tuple[str, bool]]]:
    health: list[tuple[str, bool]] = []

    def call_soon(work: Callable[[], None]) -> None:
        work()

    context = ChannelContext(
        clock=clock,
        catalog=CATALOG,
        call_soon=call_soon,
        report_health=lambda device, up, _detail: health.append((device, up)),
        is_down=lambda _device: False,
        is_idle=lambda: False,
    )
    return RfidChannel(CONFIG, tmp_path, context), health


def up(ch: RfidChannel, clock: ManualClock) -> None:

    ch._on_health(ReaderHealth("platter", "up", "llrp inventory", clock.monotonic(), "x"))


def collect(ch: RfidChannel, at: float) -> object:
    request = CollectEvidence(1, CATALOG.boxes["BOX-S"], MANIFEST)
    return asyncio.run(ch.collect(request, at, at + 5.0))


def test_only_reads_of_the_decisive_window_count(tmp_path: Path) -> None:
    clock = ManualClock()
    ch, health = channel(tmp_path, clock)
    up(ch, clock)
    assert health == [("rfid platter", True)]
    clock.advance(5)
    close = clock.monotonic()
    before = TagRead(ear_tag(1), 1, -40, close - 0.5, close - 0.4, 9, "platter")
    stray = TagRead(ear_tag(7), 2, -50, close + 0.2, close + 0.3, 9, "platter")
    ch._reads_from_thread([before, stray])
    report = collect(ch, close)
    missing = report.finding_for(EAR)
    assert missing.status is FindingStatus.MISSING  # read before CLOSE only: taken out since
    assert ear_tag(1).hex().upper() in missing.detail
    assert report.finding_for("MUG-BLUE").status is FindingStatus.NOT_APPLICABLE

    metrics = Metrics()
    ch.attach_metrics(metrics)
    close = clock.monotonic()
    ch._reads_from_thread(
        [
            TagRead(ear_tag(1), 1, -40, close + 0.2, close + 0.3, 9, "platter"),
            TagRead(ear_tag(2), 1, -70, close + 0.2, close + 0.3, 9, "platter"),
        ]
    )
    report = collect(ch, close)
    assert report.state is ChannelState.OK
    assert report.finding_for(EAR).status is FindingStatus.CONFIRMED
    text = metrics.render()
    assert f'{REJECTED}{{reason="below_rssi_floor"}} 1' in text
    assert f'{RSSI_READS}{{antenna="1",rssi_dbm="-40"}} 1' in text
    # The evidence record gets the tags themselves: the one counted and the one too weak.
    seen = ch.observations()
    [accepted] = seen["accepted"]
    assert accepted["epc"] == ear_tag(1).hex().upper() and accepted["sku"] == EAR
    assert seen["rejected_epcs"]["below_rssi_floor"] == [ear_tag(2).hex().upper()]
    ch.stop()


def test_a_reader_down_or_silent_fails_closed(tmp_path: Path) -> None:
    clock = ManualClock()
    ch, _ = channel(tmp_path, clock)
    report = collect(ch, clock.monotonic())
    assert report.state is ChannelState.DOWN and not report.findings  # never came up
    up(ch, clock)
    clock.advance(1)
    report = collect(ch, clock.monotonic())
    assert report.state is ChannelState.STALE  # up, but read nothing with tagged units due
    assert "read no tag" in report.reasons[0].message
    ch.stop()


def test_a_passed_carton_ships_its_epcs_and_they_are_denied_next_time(tmp_path: Path) -> None:
    from station.session import RecordAttempt, RecordAudit

    clock = ManualClock()
    ch, _ = channel(tmp_path, clock)
    up(ch, clock)
    clock.advance(1)
    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(1), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    collect(ch, close)
    ch.on_effect(RecordAttempt(attempt(9, Outcome.PASS, order="ORD-9")))
    assert ch.ledger is not None and len(ch.ledger) == 1

    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(1), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    report = collect(ch, close)
    assert report.finding_for(EAR).status is FindingStatus.UNCERTAIN
    assert [r.code for r in report.review] == ["rfid_tag_shipped"]

    # The PASS is withdrawn (the label scan found it lighter): held again, its tags count again.
    withdrawn = {"order_id": "ORD-9", "carton_id": "C1", "attempt": 1, "code": "final_weight_low"}
    ch.on_effect(RecordAudit("carton.pass_withdrawn", withdrawn, clock.now_utc()))
    assert len(ch.ledger) == 0
    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(1), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    assert collect(ch, close).finding_for(EAR).status is FindingStatus.CONFIRMED
    ch.stop()


def test_a_blocked_carton_ships_nothing_until_a_reviewer_releases_it(tmp_path: Path) -> None:
    from station.session import RecordAttempt, RecordAudit

    clock = ManualClock()
    ch, _ = channel(tmp_path, clock)
    up(ch, clock)
    clock.advance(1)
    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(4), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    collect(ch, close)
    ch.on_effect(RecordAttempt(attempt(9, Outcome.BLOCK, order="ORD-9")))
    assert ch.ledger is not None and len(ch.ledger) == 0  # a BLOCK does not leave the station
    released = {"order_id": "ORD-9", "carton_id": "C1", "attempt": 1, "outcome": "BLOCK"}
    ch.on_effect(RecordAudit("carton.released", released, clock.now_utc()))
    assert ch.ledger.denials([ear_tag(4).hex().upper()]) == {ear_tag(4).hex().upper(): "shipped"}
    ch.stop()


def test_a_release_under_a_degraded_mode_ships_flagged_and_a_newer_stations_field_is_taken(
    tmp_path: Path,
) -> None:
    """Every event while a degraded mode is in force carries its flag, the shipped EPCs too;
    another station's message with a field this version does not know still feeds the ledger
    (an additive field keeps v1 v1, docs/mqtt.md)."""
    from datetime import UTC, datetime

    from station.events import CloudEvent, EventType, TopicKey
    from station.mqtt import ReceivedMessage
    from station.session import RecordAudit

    clock = ManualClock()
    ch, _ = channel(tmp_path, clock)
    site = FakeSite()
    ch.attach_publisher(site)  # type: ignore[arg-type]
    up(ch, clock)
    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(4), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    collect(ch, close)
    flag = {
        "fallback": "scan_for_weight",
        "authorised_by": "R9",
        "reason_code": "scale_down",
        "started_at": "2026-11-27T10:00:00+00:00",
        "ends_at": "2026-11-27T10:30:00+00:00",
    }
    released = {"order_id": "ORD-9", "carton_id": "C1", "attempt": 1, "degraded": flag}
    ch.on_effect(RecordAudit("carton.released", released, clock.now_utc()))
    [(_, shipped)] = site.published
    assert shipped.degraded is not None and shipped.degraded.authorised_by == "R9"  # type: ignore[attr-defined]
    # Not degraded: the key is absent, so a station from before it still takes the message.
    plain = shipped.model_copy(update={"degraded": None})  # type: ignore[attr-defined]
    assert "degraded" not in plain.model_dump(mode="json")

    epc = ear_tag(5).hex().upper()
    newer = {"station_id": "pack-02", "site_id": "dc-sim", "order_id": "O", "carton_id": "C"}
    payload = CloudEvent(
        id="2",
        source="packstation/dc-sim/pack-02",
        type=EventType.RFID_EPCS_SHIPPED,
        time=datetime.now(UTC),
        stationseq=1,
        data={**newer, "epcs": [epc], "a_field_from_a_later_version": 1},
    )
    key = TopicKey.RFID_EPCS_SHIPPED
    site.handlers[key](ReceivedMessage(key, "t", payload, None))  # type: ignore[operator]
    assert ch.ledger is not None and ch.ledger.denials([epc]) == {epc: "shipped"}
    ch.stop()


class FakeSite:
    """The publisher's site-facing surface: records subscriptions, durable events and sends."""

    station_id, site_id, source = "pack-01", "dc-sim", "packstation/dc-sim/pack-01"

    def __init__(self) -> None:
        self.handlers: dict[object, object] = {}
        self.published: list[tuple[object, object]] = []
        self.sent: list[object] = []

    def subscribe(self, key, handler, on_invalid=None) -> None:  # type: ignore[no-untyped-def]
        self.handlers[key] = handler

    def publish(self, event_type, data, subject=None):  # type: ignore[no-untyped-def]
        self.published.append((event_type, data))

    def send(self, key, payload) -> bool:  # type: ignore[no-untyped-def]
        self.sent.append(payload)
        return True


def test_the_site_feeds_the_ledger_returns_clear_it_and_open_epcs_expire(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from station.events import (
        CloudEvent,
        EpcsOpen,
        EpcsReturned,
        EpcsShipped,
        EventType,
        TopicKey,
    )
    from station.mqtt import ReceivedMessage

    clock = ManualClock()
    ch, _ = channel(tmp_path, clock)
    site = FakeSite()
    ch.attach_publisher(site)  # type: ignore[arg-type]
    assert set(site.handlers) == {
        TopicKey.RFID_EPCS_SHIPPED,
        TopicKey.RFID_RETURNS,
        TopicKey.RFID_EPCS_OPEN,
    }
    shipped_epc, open_epc = ear_tag(1).hex().upper(), ear_tag(2).hex().upper()

    def deliver(key: TopicKey, payload: object) -> None:
        site.handlers[key](ReceivedMessage(key, "t", payload, None))  # type: ignore[operator]

    def event(source: str, epc: str) -> CloudEvent:  # type: ignore[type-arg]
        data = EpcsShipped(
            station_id="x", site_id="dc-sim", order_id="O", carton_id="C", epcs=[epc]
        )
        return CloudEvent[EpcsShipped](
            id="1",
            source=source,
            type=EventType.RFID_EPCS_SHIPPED,
            time=datetime.now(UTC),
            stationseq=1,
            data=data,
        )

    assert ch.ledger is not None
    deliver(TopicKey.RFID_EPCS_SHIPPED, event(site.source, shipped_epc))  # our own: ignored
    assert len(ch.ledger) == 0
    deliver(TopicKey.RFID_EPCS_SHIPPED, event("packstation/dc-sim/pack-02", shipped_epc))
    assert ch.ledger.denials([shipped_epc]) == {shipped_epc: "shipped"}
    deliver(TopicKey.RFID_RETURNS, EpcsReturned(epcs=[shipped_epc]))
    assert len(ch.ledger) == 0

    deliver(TopicKey.RFID_EPCS_OPEN, EpcsOpen(station_id="pack-02", epcs=[open_epc], ttl_s=60))
    deliver(TopicKey.RFID_EPCS_OPEN, EpcsOpen(station_id="pack-01", epcs=[shipped_epc]))  # own
    assert ch._open_denials({open_epc, shipped_epc}) == {open_epc: "open_elsewhere"}
    clock.advance(61)
    assert ch._open_denials({open_epc}) == {}  # station A went quiet: forgotten

    # A carton counted here is announced as open; passing it ships (durably) and clears it.
    up(ch, clock)
    close = clock.monotonic()
    ch._reads_from_thread([TagRead(ear_tag(3), 1, -40, close + 0.2, close + 0.3, 9, "platter")])
    collect(ch, close)
    assert site.sent[-1].epcs == [ear_tag(3).hex().upper()]  # type: ignore[attr-defined]
    ch._ship("ORD-9", "C1", 1)
    ch._announce_open(None)
    [(event_type, data)] = site.published
    assert event_type is EventType.RFID_EPCS_SHIPPED
    assert data.epcs == [ear_tag(3).hex().upper()]  # type: ignore[attr-defined]
    assert site.sent[-1].epcs == []  # type: ignore[attr-defined]
    ch.stop()
