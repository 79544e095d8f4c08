"""`packstation demo`: the whole station on simulated hardware, with no configuration.

A broker (mosquitto when installed, else the embedded amqtt), the reissue-backend sink, a scale
and a scanner simulator on real ptys, an LLRP RFID reader simulator under the platter (tagged
units carry SGTIN-96 tags), and the daemon itself. A scripted packer works through a stream of
orders: most are complete, some miss an item and get fixed, one is left short, and in one the
packer sets an 8 g earring down beside the box: the scale cannot tell, RFID blocks the carton
naming the earring's EPC. The demo
prints each verdict as the station shows it and each event as the backend receives it, then a
summary, and exits 0 when the backend holds every event exactly once with no sequence gap.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from simulators.broker import EmbeddedBroker, MosquittoBroker, MosquittoNotFound
from simulators.rig import SimulatedStation
from simulators.sink import Sink
from station.daemon import StationDaemon, load_station_config
from station.domain import Manifest, ManifestLine
from station.logs import configure as configure_logging
from station.session import Effect, RecordAttempt

# Products heavy enough for the weight channel alone to vouch for them
# (docs/weight-verification.md explains which items weight cannot prove).
DEMO_SKUS = ("MUG-BLUE", "TEA-GREEN-250", "BOOK-COOK", "CANDLE-SOY", "HEADPHONES-X1", "VITAMIN-D3")
BOXES = ("BOX-S", "BOX-M")
# RFID-tagged and too light for the scale: only the reader can prove it is in the carton.
RFID_ONLY_SKU = "EAR-SILVER"


@dataclass(frozen=True, slots=True)
class DemoCarton:
    manifest: Manifest
    box: str
    leave_out: str | None  # SKU of one unit the packer forgets
    fixed: bool  # the packer adds it after the BLOCK
    beside: str | None = None  # SKU of one unit set down beside the box (RFID reads it weakly)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the whole station on simulated hardware")
    demo.add_argument("--cartons", type=int, default=10, help="how many cartons to pack")
    demo.add_argument("--seed", type=int, default=2026, help="seed of the order stream")
    demo.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "embedded"),
        default="auto",
        help="auto: mosquitto when installed, else the embedded amqtt broker (MQTT 3.1.1)",
    )
    demo.add_argument("--verbose", action="store_true", help="show the daemon's own log")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    configure_logging("INFO" if args.verbose else "ERROR", json_lines=False)
    logging.getLogger("amqtt").setLevel(logging.ERROR)  # its own start-up chatter
    with tempfile.TemporaryDirectory(prefix="packstation-demo-") as tmp:
        return _demo(Path(tmp), args.cartons, args.seed, args.broker)


def _demo(workdir: Path, count: int, seed: int, broker_choice: str) -> int:
    broker, protocol = _start_broker(workdir, broker_choice)
    sink = Sink(
        broker.host,
        broker.port,
        db_path=str(workdir / "backend.sqlite3"),
        protocol=protocol,
        echo=lambda line: print(f"    backend <- {_short(line)}", flush=True),
    )
    station = SimulatedStation(
        workdir / "station", broker.host, broker.port, mqtt_protocol=protocol, rfid=True
    )
    try:
        sink.start()
        station.start()
        cartons = _order_stream(station, count, random.Random(seed))
        with _RunningDaemon(station.config_path) as daemon:
            if daemon.daemon.api is not None:
                print(f"packer screen: http://127.0.0.1:{daemon.daemon.api.port}/screen/")
            for carton in cartons:
                _pack(station, daemon, carton)
            committed = daemon.outbox_committed()
            sink.wait_for(lambda s: len(s.events()) >= committed, timeout=10)
        return _summary(cartons, daemon.records, committed, sink)
    finally:
        sink.stop()
        sink.close()
        station.stop()
        broker.stop()


def _start_broker(workdir: Path, choice: str) -> tuple[MosquittoBroker | EmbeddedBroker, str]:
    broker: MosquittoBroker | EmbeddedBroker
    try:
        if choice == "embedded":
            raise MosquittoNotFound("embedded broker requested")
        broker, protocol, name = MosquittoBroker(workdir / "broker"), "5", "mosquitto (MQTT 5)"
    except MosquittoNotFound:
        if choice == "mosquitto":
            raise
        broker, protocol, name = EmbeddedBroker(), "3.1.1", "embedded amqtt (MQTT 3.1.1)"
    broker.start()
    print(f"broker: {name} on {broker.host}:{broker.port}")
    return broker, protocol


def _order_stream(station: SimulatedStation, count: int, rng: random.Random) -> list[DemoCarton]:
    """Orders with 1-4 lines of weighable products; a third miss a unit, most of those get fixed.
    The second carton holds silver earrings: the packer leaves them beside the box at first."""
    cartons = []
    for n in range(count):
        if n == 1:
            cartons.append(_earring_carton(station, n, rng))
            continue
        skus = rng.sample(DEMO_SKUS, rng.randint(1, 3))
        lines = tuple(
            ManifestLine(line_id=str(i + 1), sku=sku, quantity=rng.randint(1, 2))
            for i, sku in enumerate(skus)
        )
        manifest = Manifest(
            order_id=f"ORD-{5001 + n}",
            carton_id="C1",
            version=1,
            lines=lines,
            tote_id=f"T-{rng.randint(100, 999)}",
            picker_id=f"P{rng.randint(10, 40)}",
        )
        station.write_manifest(manifest)
        short = n % 3 == 1
        leave_out = rng.choice(skus) if short else None
        cartons.append(DemoCarton(manifest, rng.choice(BOXES), leave_out, fixed=n % 9 != 7))
    return cartons


def _earring_carton(station: SimulatedStation, n: int, rng: random.Random) -> DemoCarton:
    lines = (
        ManifestLine(line_id="1", sku=rng.choice(DEMO_SKUS[:2]), quantity=1),
        ManifestLine(line_id="2", sku=RFID_ONLY_SKU, quantity=1),
    )
    manifest = Manifest(
        order_id=f"ORD-{5001 + n}",
        carton_id="C1",
        version=1,
        lines=lines,
        tote_id=f"T-{rng.randint(100, 999)}",
        picker_id=f"P{rng.randint(10, 40)}",
    )
    station.write_manifest(manifest)
    return DemoCarton(manifest, "BOX-S", None, fixed=True, beside=RFID_ONLY_SKU)


def _pack(station: SimulatedStation, daemon: _RunningDaemon, carton: DemoCarton) -> None:
    m = carton.manifest
    print(f"\n{m.order_id}/{m.carton_id}: {_lines_text(m)} in {carton.box}", flush=True)
    if carton.leave_out:
        print(f"  packer forgets one {carton.leave_out}", flush=True)
    if carton.beside:
        print(
            f"  packer sets the {carton.beside} down beside the box (8 g: the scale cannot "
            "tell; its RFID tag reads weakly from the table)",
            flush=True,
        )
    leave_out = (carton.leave_out,) if carton.leave_out else ()
    beside = (carton.beside,) if carton.beside else ()
    station.pack("7", m.order_id, m.carton_id, carton.box, leave_out=leave_out, beside=beside)
    record = daemon.next_verdict().record
    if carton.beside and not record.verdict.passed:
        for line in record.verdict.missing:
            print(f"  RFID evidence for {line.sku}: EPC {', '.join(line.evidence)}", flush=True)
        print(f"  packer puts the {carton.beside} in and closes again", flush=True)
        station.put_back(carton.beside)
        time.sleep(0.3)  # the scale sees it before the close
        station.close()
        daemon.next_verdict()
    elif carton.leave_out and not record.verdict.passed:
        if carton.fixed:
            print(f"  packer adds the missing {carton.leave_out} and closes again", flush=True)
            station.add_unit(carton.leave_out)
            time.sleep(0.05)
            station.close()
            daemon.next_verdict()
        else:
            print("  carton left blocked for the supervisor; packer logs out", flush=True)
            station.scan("LOGOUT")
    station.clear_platter()
    time.sleep(station.timing.stability_window_s + station.timing.settle_window_s)


class _RunningDaemon:
    """The daemon on its own asyncio loop in a thread, with an observer for its verdicts."""

    def __init__(self, config_path: Path) -> None:
        self.daemon = StationDaemon(load_station_config(config_path))
        self.daemon.observers.append(self._observe)
        self.records: list[RecordAttempt] = []
        self._verdicts: list[RecordAttempt] = []
        self._arrived = threading.Condition()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="station-daemon", daemon=True)

    def __enter__(self) -> _RunningDaemon:
        self._thread.start()
        if not self._ready.wait(15) or not self.daemon.devices_seen.wait(15):
            raise RuntimeError("the station daemon did not become ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self._thread.join(15)

    def _run(self) -> None:
        asyncio.run(self.daemon.run(ready=self._ready.set))

    def _observe(self, effect: Effect) -> None:
        if isinstance(effect, RecordAttempt):
            _print_verdict(effect)
            with self._arrived:
                self.records.append(effect)
                self._verdicts.append(effect)
                self._arrived.notify_all()

    def next_verdict(self, timeout: float = 15.0) -> RecordAttempt:
        with self._arrived:
            if not self._arrived.wait_for(lambda: bool(self._verdicts), timeout):
                raise TimeoutError("no verdict from the station")
            return self._verdicts.pop(0)

    def outbox_committed(self) -> int:
        return self.daemon.outbox.last_station_seq()


def _print_verdict(effect: RecordAttempt) -> None:
    record = effect.record
    verdict = record.verdict
    colour = {"PASS": "GREEN", "BLOCK": "RED", "REVIEW": "AMBER"}[verdict.outcome.value]
    weight = record.weight
    grams = ""
    if weight and weight.measured_g is not None and weight.expected_g is not None:
        grams = (
            f" ({weight.measured_g:.0f} g vs {weight.expected_g:.0f} ± {weight.tolerance_g:.0f} g)"
        )
    print(f"  attempt {record.attempt}: {verdict.outcome.value} [{colour}]{grams}", flush=True)
    for reason in verdict.reasons:
        print(f"    {reason.message}", flush=True)


def _summary(
    cartons: list[DemoCarton], records: list[RecordAttempt], committed: int, sink: Sink
) -> int:
    outcomes = Counter(r.record.verdict.outcome.value for r in records)
    types = Counter(
        e.type.removeprefix("com.packstation.").removesuffix(".v1") for e in sink.events()
    )
    received = len(sink.events())
    gaps = sink.gaps()
    print("\nsummary")
    print(f"  cartons packed:      {len(cartons)}")
    print(f"  verdicts:            {dict(outcomes)}")
    print(f"  events committed:    {committed}")
    print(f"  events received:     {received} ({dict(types)})")
    print(f"  duplicates removed:  {len(sink.duplicates)}")
    print(f"  sequence gaps:       {len(gaps)}")
    ok = received == committed and not gaps
    print("  result:              " + ("every event delivered once" if ok else "EVENTS MISSING"))
    return 0 if ok else 1


def _lines_text(manifest: Manifest) -> str:
    return ", ".join(f"{line.quantity} x {line.sku}" for line in manifest.lines)


def _short(line: str) -> str:
    # "new seq=9 source=... type=com.packstation.missing_item.resolved.v1 subject=C1 id=..."
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return f"#{fields.get('seq', '?')} {_kind(fields.get('type', '?'))}"


def _kind(event_type: str) -> str:
    return event_type.removeprefix("com.packstation.").removesuffix(".v1")
