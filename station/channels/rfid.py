"""The RFID channel: tag reads from the readers under the platter, the decisive window at close,
and the ledger of EPCs this station shipped.

Each configured reader runs in its own supervisor thread (`rfid.device.RfidReader`); its reads are
handed to the loop with `ChannelContext.call_soon` and kept in a bounded rolling buffer stamped on
the station's monotonic clock. At close the channel waits for the decisive window
([close - lookback_s, close + window_s]), filters its reads (`rfid.window.filter_window`: antennas,
RSSI floors, seen count, prefixes, the shipped-EPC ledger) and reports (`station.rfid_check`).
Every close logs the per-antenna RSSI histogram ("rfid window") and counts rejected reads by
reason and reads by RSSI bin in the metrics, so a site can tune its floors from data.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from rfid.device import ReaderHealth, RfidReader
from rfid.identity import EpcSkuResolver
from rfid.ledger import EpcLedger
from rfid.reads import TagRead
from rfid.window import AcceptedTag, Denial, WindowResult, filter_window
from station.channels.base import ChannelContext, EvidenceChannel
from station.domain import expected_units
from station.events import (
    CloudEvent,
    EpcsOpen,
    EpcsReturned,
    EpcsShipped,
    EventType,
    TopicKey,
)
from station.metrics import Metrics
from station.mqtt import EventPublisher, InvalidMessage, ReceivedMessage
from station.rfid_check import CHANNEL, ReaderProblem, RfidCheckConfig, rfid_report
from station.session import CollectEvidence, Effect, RecordAttempt, RecordAudit
from station.verification import ChannelReport, ChannelState

log = logging.getLogger("packstation.rfid")

_IN_FLIGHT_S = 0.05  # real seconds for reads stamped inside the window to reach the loop
_REMEMBERED_ATTEMPTS = 16  # accepted EPCs kept per attempt until its verdict ships the carton
# Rejected EPCs kept in the evidence record per reason: a busy packing area has many stray tags.
_EVIDENCE_REJECTED_EPCS = 100
REJECTED = "packstation_rfid_rejected_reads_total"
RSSI_READS = "packstation_rfid_window_reads_total"


def reader_device(name: str) -> str:
    return f"rfid {name}"


class RfidChannel(EvidenceChannel):
    name = CHANNEL

    def __init__(self, config: RfidCheckConfig, data_dir: Path, context: ChannelContext) -> None:
        self.config = config
        self._context = context
        self.resolver = EpcSkuResolver.from_catalog(context.catalog, config.site_table())
        self.reads: deque[TagRead] = deque(maxlen=config.buffer_reads)
        self.readers = [
            RfidReader(
                reader,
                on_reads=self._reads_from_thread,
                on_health=self._health_from_thread,
                clock=context.clock,
            )
            for reader in config.readers
        ]
        self._up: set[str] = set()  # reader names currently up (on the loop)
        self._changed_at: dict[str, float] = {}  # reader name -> last health change (monotonic)
        self._detail: dict[str, str] = {}
        self.ledger = (
            EpcLedger(
                data_dir / "rfid-ledger.sqlite3",
                timedelta(days=config.ledger_retention_days),
                context.clock.now_utc(),
            )
            if config.deny_shipped
            else None
        )
        # (order, carton, attempt) -> EPCs in that carton, until its verdict ships it (or not).
        self._in_carton: OrderedDict[tuple[str, str, int], tuple[str, ...]] = OrderedDict()
        self._metrics: Metrics | None = None
        self.last_result: WindowResult | None = None
        self._publisher: EventPublisher | None = None
        # Other stations' open cartons: station id -> (EPCs, monotonic time it expires).
        self.open_elsewhere: dict[str, tuple[frozenset[str], float]] = {}
        self._open_here: tuple[str, str] | None = None  # (order, carton) announced as open

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(reader_device(r.name) for r in self.config.readers)

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
        if self.ledger is not None:
            self.ledger.close()

    def attach_metrics(self, metrics: Metrics) -> None:
        metrics.counter(REJECTED, "RFID reads of decisive windows that did not count, by reason.")
        metrics.counter(
            RSSI_READS,
            "RFID reads of decisive windows by antenna and RSSI bin (lower edge, dBm): the "
            "histogram a site tunes its floors from.",
        )
        self._metrics = metrics

    def attach_publisher(self, publisher: EventPublisher) -> None:
        """The site link: the other stations' shipped EPCs and the WMS's returns feed the
        ledger; their open cartons' EPCs feed the `open_elsewhere` deny list."""
        if not self.config.share_with_site:
            return
        self._publisher = publisher
        if self.ledger is not None:
            publisher.subscribe(TopicKey.RFID_EPCS_SHIPPED, self._from_site, self._invalid)
            publisher.subscribe(TopicKey.RFID_RETURNS, self._from_site, self._invalid)
        publisher.subscribe(TopicKey.RFID_EPCS_OPEN, self._from_site, self._invalid)

    def on_effect(self, effect: Effect) -> None:
        """A carton passed or released ships its EPCs: they go to the ledger (and to the site).
        A carton that leaves the station in any way is no longer open here."""
        if isinstance(effect, RecordAttempt):
            record = effect.record
            if record.verdict.passed or record.mode == "shadow":  # shadow cartons ship anyway
                self._ship(record.order_id, record.carton_id, record.attempt, record.degraded)
                self._announce_open(None)
        elif isinstance(effect, RecordAudit) and effect.kind == "carton.pass_withdrawn":
            # Held again at this station: its units may be read here once more. The other
            # stations keep them as shipped (a carton moved elsewhere goes to REVIEW there).
            if self.ledger is not None:
                self.ledger.forget_carton(
                    str(effect.data["order_id"]), str(effect.data["carton_id"])
                )
        elif isinstance(effect, RecordAudit) and effect.kind == "carton.released":
            data = effect.data
            degraded = data.get("degraded")
            self._ship(
                str(data["order_id"]),
                str(data["carton_id"]),
                int(data["attempt"]),  # type: ignore[call-overload]
                degraded if isinstance(degraded, Mapping) else None,
            )
            self._announce_open(None)
        elif isinstance(effect, RecordAudit) and effect.kind in (
            "carton.aborted",
            "carton.replaced",
        ):
            self._announce_open(None)

    # -- the site: shared ledger, returns, open cartons (paho thread hands over to the loop) -----

    def _from_site(self, message: ReceivedMessage) -> None:
        self._context.call_soon(lambda: self._on_site(message))

    def _invalid(self, message: InvalidMessage) -> None:
        log.warning(
            "invalid site RFID message", extra={"topic": message.topic, "error": message.error}
        )

    def _on_site(self, message: ReceivedMessage) -> None:
        publisher = self._publisher
        assert publisher is not None
        payload = message.payload
        try:
            if message.key is TopicKey.RFID_EPCS_SHIPPED and self.ledger is not None:
                assert isinstance(payload, CloudEvent)
                if payload.type is not EventType.RFID_EPCS_SHIPPED:
                    return
                if payload.source == publisher.source:
                    return  # our own, already in the ledger
                shipped = EpcsShipped.model_validate(_known_fields(payload.data, EpcsShipped))
                self.ledger.shipped(shipped.epcs, shipped.order_id, shipped.carton_id, payload.time)
                log.info(
                    "site shipped epcs",
                    extra={
                        "station": shipped.station_id,
                        "order_id": shipped.order_id,
                        "epcs": len(shipped.epcs),
                    },
                )
            elif message.key is TopicKey.RFID_RETURNS and self.ledger is not None:
                assert isinstance(payload, EpcsReturned)
                self.ledger.forget(payload.epcs)
                log.info(
                    "returned epcs", extra={"return_id": payload.return_id, "epcs": payload.epcs}
                )
            elif message.key is TopicKey.RFID_EPCS_OPEN:
                assert isinstance(payload, EpcsOpen)
                if payload.station_id == publisher.station_id:
                    return
                log.info(
                    "site open epcs",
                    extra={"station": payload.station_id, "epcs": len(payload.epcs)},
                )
                if payload.epcs:
                    expires = self._context.clock.monotonic() + min(
                        payload.ttl_s, self.config.open_ttl_s
                    )
                    self.open_elsewhere[payload.station_id] = (frozenset(payload.epcs), expires)
                else:
                    self.open_elsewhere.pop(payload.station_id, None)
        except (sqlite3.Error, ValueError) as exc:  # a lost entry only weakens the check
            log.error(
                "cannot apply a site RFID message",
                extra={"topic": message.topic, "error": str(exc)},
            )

    def _open_denials(self, epcs: set[str]) -> dict[str, Denial]:
        now = self._context.clock.monotonic()
        for station, (_epcs, expires) in list(self.open_elsewhere.items()):
            if expires <= now:
                del self.open_elsewhere[station]
        return {
            epc: "open_elsewhere"
            for open_epcs, _expires in self.open_elsewhere.values()
            for epc in open_epcs & epcs
        }

    def _announce_open(self, carton: tuple[str, str] | None, epcs: tuple[str, ...] = ()) -> None:
        """Tell the site which EPCs are in this station's open carton ([] clears it)."""
        publisher = self._publisher
        if publisher is None or (carton is None and self._open_here is None):
            return
        self._open_here = carton if epcs else None
        message = EpcsOpen(
            station_id=publisher.station_id,
            order_id=carton[0] if carton else None,
            carton_id=carton[1] if carton else None,
            epcs=list(epcs),
            ttl_s=self.config.open_ttl_s,
        )
        if not publisher.send(TopicKey.RFID_EPCS_OPEN, message):
            log.warning("open EPCs not announced: the MQTT link is down")

    # -- reads and health (threads hand over to the loop) ---------------------------------------

    def _reads_from_thread(self, reads: list[TagRead]) -> None:
        self._context.call_soon(lambda: self.reads.extend(reads))

    def _health_from_thread(self, health: ReaderHealth) -> None:
        self._context.call_soon(lambda: self._on_health(health))

    def _on_health(self, health: ReaderHealth) -> None:
        self._changed_at[health.device] = health.since_monotonic
        self._detail[health.device] = health.detail
        if health.state == "up":
            self._up.add(health.device)
        else:
            self._up.discard(health.device)
        if health.state != "connecting":  # the first connect is neither a fault nor a recovery
            up = health.state == "up"
            self._context.report_health(reader_device(health.device), up, health.detail)

    # -- the decisive window ---------------------------------------------------------------------

    async def collect(
        self, request: CollectEvidence, requested_at: float, deadline: float
    ) -> ChannelReport:
        clock = self._context.clock
        opened = requested_at - self.config.lookback_s
        closes = min(requested_at + self.config.window_s, deadline)
        while (remaining := closes - clock.monotonic()) > 0:
            await clock.sleep(remaining)
        await asyncio.sleep(_IN_FLIGHT_S)
        # The reads of one window's length before it opened come along: they count as
        # `outside_window` (units read while still going in, or on their way out).
        since = opened - self.config.window_s
        reads = [r for r in self.reads if r.last_seen >= since and r.first_seen <= closes]
        problems: list[ReaderProblem] = []
        try:
            epcs = {r.epc_hex for r in reads}
            deny = {
                **self._open_denials(epcs),
                **(self.ledger.denials(epcs) if self.ledger else {}),  # shipped wins
            }
        except sqlite3.Error as exc:  # fail closed: without the ledger nothing is vouched for
            log.error("cannot read the shipped-EPC ledger", extra={"error": str(exc)})
            deny = {}
            message = f"The shipped-EPC ledger cannot be read ({exc})."
            problems.append(ReaderProblem("ledger", ChannelState.STALE, message))
        result = filter_window(
            reads, self.config.window, self.resolver, deny=deny, window=(opened, closes)
        )
        catalog = self._context.catalog
        expected = expected_units(request.manifest, catalog)
        tagged = any(
            n > 0 and sku in catalog.items and catalog.items[sku].rfid_tagged
            for sku, n in expected.items()
        )
        in_window = [r for r in reads if r.last_seen >= opened]
        problems += self._problems(opened, in_window, tagged)
        report = rfid_report(
            expected,
            catalog,
            result,
            problems=problems,
            sku_of=lambda epc: self.resolver.resolve(epc).sku,
            confidence=self.config.confidence,
        )
        self._remember(request, result)
        self._record(request, result, report)
        self.last_result = result
        return report

    def observations(self) -> Mapping[str, object]:
        """The decisive window's reads: accepted, unknown and denied tags and rejected EPCs."""
        result = self.last_result
        if result is None:
            return {}
        rejected = {
            reason: sorted(epcs)[:_EVIDENCE_REJECTED_EPCS]
            for reason, epcs in result.rejected_epcs.items()
        }
        return {
            "accepted": [_tag(t) for tags in result.accepted_by_sku.values() for t in tags],
            "unknown": [_tag(t) for t in result.unknown],
            "denied": [{**_tag(d.tag), "denial": d.denial} for d in result.denied],
            "rejected_epcs": rejected,
            "rejected_reads": dict(result.rejected_reads),
            "reads": result.total_reads,
        }

    def _problems(
        self, opened: float, in_window: list[TagRead], tagged: bool
    ) -> list[ReaderProblem]:
        """Readers that cannot vouch for this window: down, restarted in it, or silent."""
        problems = []
        for reader in self.config.readers:
            name = reader.name
            if name not in self._up:
                detail = self._detail.get(name) or "not connected yet"
                problems.append(
                    ReaderProblem(name, ChannelState.DOWN, f"RFID reader {name} is down: {detail}")
                )
            elif self._changed_at.get(name, opened) > opened:
                problems.append(
                    ReaderProblem(
                        name,
                        ChannelState.STALE,
                        f"RFID reader {name} reconnected during the decisive read: close again.",
                    )
                )
            elif tagged and not any(r.reader == name for r in in_window):
                problems.append(
                    ReaderProblem(
                        name,
                        ChannelState.STALE,
                        f"RFID reader {name} read no tag at all during the decisive read although "
                        "the carton should hold tagged units: is it inventorying?",
                    )
                )
        return problems

    def _remember(self, request: CollectEvidence, result: WindowResult) -> None:
        epcs = [t.epc for tags in result.accepted_by_sku.values() for t in tags]
        epcs += [t.epc for t in result.unknown]
        key = (request.manifest.order_id, request.manifest.carton_id, request.attempt)
        self._in_carton[key] = tuple(epcs)
        self._announce_open(key[:2], tuple(epcs))
        while len(self._in_carton) > _REMEMBERED_ATTEMPTS:
            self._in_carton.popitem(last=False)

    def _ship(
        self,
        order_id: str,
        carton_id: str,
        attempt: int,
        degraded: Mapping[str, object] | None = None,
    ) -> None:
        """`degraded`: the flag of a degraded mode the carton passed or was released under."""
        epcs = self._in_carton.pop((order_id, carton_id, attempt), ())
        if not epcs or self.ledger is None:
            return
        try:
            self.ledger.shipped(epcs, order_id, carton_id, self._context.clock.now_utc())
        except sqlite3.Error as exc:  # the carton has shipped; a lost entry only weakens the check
            log.error("cannot record shipped EPCs", extra={"order_id": order_id, "error": str(exc)})
        publisher = self._publisher
        if publisher is not None:  # durable: through the outbox, like every event
            shipped = EpcsShipped(
                station_id=publisher.station_id,
                site_id=publisher.site_id,
                order_id=order_id,
                carton_id=carton_id,
                epcs=sorted(set(epcs)),
                degraded=degraded,
            )
            try:
                publisher.publish(EventType.RFID_EPCS_SHIPPED, shipped, subject=carton_id)
            except sqlite3.Error as exc:  # the outbox is sick: the verdict's own events say so
                log.error(
                    "cannot queue the shipped EPCs for the site",
                    extra={"order_id": order_id, "error": str(exc)},
                )

    def _record(
        self, request: CollectEvidence, result: WindowResult, report: ChannelReport
    ) -> None:
        """One structured log line per close, and the metrics a site tunes its floors from."""
        log.info(
            "rfid window",
            extra={
                "order_id": request.manifest.order_id,
                "carton_id": request.manifest.carton_id,
                "attempt": request.attempt,
                "state": report.state.value,
                "reads": result.total_reads,
                "reads_accepted": result.accepted_reads,
                "units_by_sku": result.units_by_sku(),
                "unknown_epcs": [t.epc for t in result.unknown],
                "denied_epcs": [d.tag.epc for d in result.denied],
                "rejected_reads": dict(result.rejected_reads),
                "rssi_histograms": [h.as_dict() for h in result.histograms],
            },
        )
        metrics = self._metrics
        if metrics is None:
            return
        for reason, count in result.rejected_reads.items():
            metrics.inc(REJECTED, {"reason": reason}, count)
        for histogram in result.histograms:
            antenna = str(histogram.antenna)
            for edge, count in histogram.bins.items():
                metrics.inc(RSSI_READS, {"antenna": antenna, "rssi_dbm": f"{edge:g}"}, count)
            if histogram.no_rssi:
                metrics.inc(RSSI_READS, {"antenna": antenna, "rssi_dbm": "none"}, histogram.no_rssi)


def _tag(tag: AcceptedTag) -> dict[str, object]:
    return {
        "epc": tag.epc,
        "sku": tag.sku,
        "units": tag.units,
        "antennas": list(tag.antennas),
        "peak_rssi_dbm": tag.peak_rssi_dbm,
        "seen_count": tag.seen_count,
    }


def _known_fields(data: object, model: type[BaseModel]) -> object:
    """A newer station's additive fields dropped (docs/mqtt.md: such a field keeps v1 v1), so
    this station still takes what it knows from it; anything else is validated as it is."""
    if not isinstance(data, dict):
        return data
    return {key: value for key, value in data.items() if key in model.model_fields}
