"""Load soak: 20 stations' traffic against one mosquitto and one sink for a bounded time.

Each station is a real daemon (`python -m station.cli run`, its own process) on its own simulated
rig: a pty scale and a pty scanner, weight channel only. That is the cheapest honest station: the
whole verdict path runs (scans, manifest, settled weight, decision, evidence, the label interlock,
the fsync'd outbox, MQTT QoS 1), but no camera or RFID reader, whose cost is measured per station
in memory_bench and stations_bench; 20 all-channel daemons (about 185 MB and 3.5 % of a core each
when idle, more while packing) do not fit a 2-core CI machine next to their simulators.

Each station's packer packs one carton per `period_s` (the stations staggered over the period):
badge, order label, box, units one by one, CLOSE on the settled weight; every `short_every`-th
carton one unit is left out, so it is BLOCKED, the unit is added and the carton closed again
(PASS, `missing_item.resolved`). After the PASS the packer scans the shipping label, the station
weighs the carton again (final weight) and seals it; the carton leaves the platter. Orders are
fresh per carton (ORD-5001, ...) from two templates.

Every `sample_s` the soak reads per daemon its resident memory (VmRSS) and its queues from its
own `/metrics`: the outbox depth, the loop's inbox and background tasks, the MQTT events in
flight and read ahead; and mosquitto's VmRSS. Pass criteria, from the samples after the warm-up:

- memory flat: the least-squares RSS slope, median over the daemons, below `RSS_SLOPE_BOUND`
  (MB/min); mosquitto's below the same bound. See docs/reliability.md ("Load soak") for the bound.
- no growing queue: every queue sample at or below its bound (a few events: the outbox holds a
  carton's events until their PUBACK) and the outbox empty once the packers stop.
- no lost event: for every station the sink's unique `stationseq`s are exactly 1..committed (the
  station's own counter), no gap; duplicates are counted (removed by the sink's de-duplication);
  every carton's verdicts at the sink are the station's own attempt records, and no short carton
  passed at its first close. A complete carton the weight's noise holds is counted (a false
  hold, docs/accuracy.md) and aborted by the packer logging out, not failed.

python -m benchmarks.soak                 # 20 stations, 2 minutes after the warm-up (CI size)
python -m benchmarks.soak --minutes 30    # longer, on demand
The daemons' logs of the last run are kept in bench-results/soak/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.figures import Figure
from benchmarks.station_process import (
    DaemonProcess,
    LogEntry,
    cpu_seconds,
    is_ready,
    load_average,
    machine,
    own_cpu_seconds,
    status_kb,
)
from simulators.broker import MosquittoBroker
from simulators.daemon_process import query
from simulators.rig import SimulatedStation
from simulators.sink import Sink
from station.domain import Manifest, ManifestLine
from station.events import EventType, event_source

LOG_DIR = Path("bench-results") / "soak"
BADGE = "BADGE-S1"
# (template order, the unit a short carton lacks)
TEMPLATES = (("ORD-1001", "MUG-BLUE"), ("ORD-1002", "BOOK-COOK"))
FIRST_ORDER = 5001

# A leak that matters shows at this rate: 1 MB/min is 1.4 GB a day, it would take a 47 MB
# weight-only daemon past an all-channel station's 250 MB budget within four hours. Below it the
# RSS of a steady Python process still moves by allocator arenas and SQLite's page caches
# filling (up to 2 MiB per connection): the CI run's 2 minutes cannot tell less from noise, the
# longer run on demand can (same bound, more samples: its slope's error shrinks).
RSS_SLOPE_BOUND = 1.0  # MB/min, median over the daemons
# Queue bounds: what one carton's burst can hold, never what a backlog would.
QUEUE_BOUNDS = {
    "outbox": 25,  # a carton's events (verdict, shortage, resolution) until PUBACK, times a few
    "inbox": 50,  # scans and scale readings waiting for the loop
    "tasks": 10,  # fetch, evidence, final weight, retention, ticker...
    "inflight": 25,
    "read_ahead": 100,
}
_GAUGES = {
    "outbox": "packstation_outbox_depth",
    "inbox": "packstation_loop_inbox_depth",
    "tasks": "packstation_loop_tasks",
    "inflight": "packstation_mqtt_inflight",
    "read_ahead": "packstation_mqtt_read_ahead",
}
VERDICT_MESSAGES = ("verdict.pass", "verdict.block", "verdict.review")
REPEATED_CLOSES = 4  # a packer scans CLOSE again when told "not now", a few times


@dataclass(frozen=True, slots=True)
class SoakPlan:
    stations: int = 20
    minutes: float = 2.0  # measured time after the warm-up
    warmup_s: float = 40.0  # packing already, but not in the slopes (caches and imports settle)
    period_s: float = 12.0  # one carton per station this often
    short_every: int = 4
    sample_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float  # since the packers started
    rss_mb: float
    queues: dict[str, float]


@dataclass
class StationRecord:
    station_id: str
    samples: list[Sample] = field(default_factory=list)
    cartons: list[tuple[str, bool]] = field(default_factory=list)  # (order id, short)
    held: list[str] = field(default_factory=list)  # complete cartons the station did not pass
    closes_refused: int = 0  # closes scanned before the manifest had loaded, scanned again
    error: str = ""


@dataclass
class SoakResult:
    plan: SoakPlan
    stations: list[StationRecord]
    broker_rss: list[tuple[float, float]]  # (t_s, MB)
    committed: dict[str, int]  # station id -> its outbox's station sequence at the end
    delivered: dict[str, list[int]]  # station id -> stationseqs the sink holds (unique ids)
    duplicates: int
    verdicts: dict[tuple[str, str], list[str]]  # (station, order) -> outcomes at the sink
    recorded: dict[tuple[str, str], list[str]]  # (station, order) -> outcomes in its evidence
    outbox_at_end: dict[str, int]
    daemons_cpu: float  # % of one core, all daemons together, over the packing time
    broker_cpu: float
    simulators_cpu: float
    elapsed_s: float
    load: str


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: float
    bound: float
    met: bool
    detail: str = ""


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    if len(points) < 2:
        raise ValueError("a slope needs two points")
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        raise ValueError("all points at one time")
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def assess(result: SoakResult) -> list[Check]:
    """The pass criteria, computed from the samples and the sink (see the module docstring)."""
    warm = result.plan.warmup_s
    slopes = {
        s.station_id: slope_per_min([(x.t_s, x.rss_mb) for x in s.samples if x.t_s >= warm])
        for s in result.stations
    }
    worst = max(slopes, key=lambda k: slopes[k])
    checks = [
        Check(
            "daemon RSS slope after warm-up, median (MB/min)",
            statistics.median(slopes.values()),
            RSS_SLOPE_BOUND,
            statistics.median(slopes.values()) < RSS_SLOPE_BOUND,
            f"max {slopes[worst]:.3f} ({worst}), min {min(slopes.values()):.3f}",
        )
    ]
    broker = slope_per_min([p for p in result.broker_rss if p[0] >= warm])
    checks.append(
        Check(
            "mosquitto RSS slope after warm-up (MB/min)",
            broker,
            RSS_SLOPE_BOUND,
            broker < RSS_SLOPE_BOUND,
        )
    )
    for queue, bound in QUEUE_BOUNDS.items():
        peak = max(x.queues[queue] for s in result.stations for x in s.samples)
        checks.append(Check(f"{queue} depth, max over all samples", peak, bound, peak <= bound))
    left = sum(result.outbox_at_end.values())
    checks.append(Check("events left in the outboxes at the end", left, 0, left == 0))
    lost = {
        sid: sorted(set(range(1, n + 1)) - set(result.delivered.get(sid, [])))
        for sid, n in result.committed.items()
    }
    missing = sum(len(m) for m in lost.values())
    extra = sum(
        1
        for sid, seqs in result.delivered.items()
        for seq in seqs
        if seq > result.committed.get(sid, 0)
    )
    checks.append(
        Check(
            "events committed but not delivered (after de-duplication)",
            missing,
            0,
            missing == 0 and extra == 0,
            ", ".join(f"{sid}: {m[:5]}" for sid, m in lost.items() if m)
            + (f"; {extra} delivered beyond the committed count" if extra else ""),
        )
    )
    differ = sorted(
        f"{sid} {order}: sink {result.verdicts.get((sid, order))}, station {outcomes}"
        for (sid, order), outcomes in result.recorded.items()
        if result.verdicts.get((sid, order)) != outcomes
    )
    checks.append(
        Check(
            "cartons whose verdicts at the sink differ from the station's records",
            len(differ),
            0,
            not differ,
            "; ".join(differ[:5]),
        )
    )
    passed_short = [
        f"{record.station_id} {order_id}"
        for record in result.stations
        for order_id, short in record.cartons
        if short and result.recorded.get((record.station_id, order_id), ["?"])[0] == "PASS"
    ]
    checks.append(
        Check(
            "short cartons passed at their first close",
            len(passed_short),
            0,
            not passed_short,
            "; ".join(passed_short[:5]),
        )
    )
    errors = [f"{s.station_id}: {s.error}" for s in result.stations if s.error]
    checks.append(Check("packers that failed", len(errors), 0, not errors, "; ".join(errors[:3])))
    return checks


# -- running it ----------------------------------------------------------------------------------


class _Station:
    def __init__(self, index: int, workdir: Path, broker: MosquittoBroker, log_dir: Path) -> None:
        self.record = StationRecord(f"soak-{index + 1:02d}")
        self.rig = SimulatedStation(
            workdir / self.record.station_id,
            broker.host,
            broker.port,
            station_id=self.record.station_id,
            seed=101 + index,
        ).start()
        self.daemon = DaemonProcess(self.rig.config_path, log_dir / f"{self.record.station_id}.log")
        self.api_port = 0
        self.packer: threading.Thread | None = None

    def ready(self) -> None:
        index, _ = self.daemon.wait_for(is_ready, timeout_s=120)
        self.api_port = int(self.daemon.entry(index)["api_port"])  # type: ignore[call-overload]

    def stop(self) -> None:
        self.daemon.stop()
        self.rig.stop()

    def committed(self) -> int:
        """The station's own count of events committed (its outbox's station sequence)."""
        rows = query(
            self.rig.workdir / "data" / "outbox.sqlite3",
            "SELECT value FROM counters WHERE key = 'station_seq'",
        )
        return int(rows[0][0]) if rows else 0

    def recorded_outcomes(self) -> dict[str, list[str]]:
        """Order id -> the outcomes of its attempts in the station's evidence, in order."""
        outcomes: dict[str, list[str]] = {}
        rows = query(
            self.rig.workdir / "data" / "evidence.sqlite3",
            "SELECT order_id, outcome FROM attempts ORDER BY id",
        )
        for order_id, outcome in rows:
            outcomes.setdefault(str(order_id), []).append(str(outcome))
        return outcomes


def _is_msg(*names: str) -> Callable[[LogEntry], bool]:
    return lambda entry: entry.get("msg") in names


def _close_refused(entry: LogEntry) -> bool:
    params = entry.get("params")
    return (
        entry.get("msg") == "scan.not_now"
        and isinstance(params, dict)
        and params.get("code") == "CloseCode"
    )


def _verdict_of(station: _Station, after: int) -> str:
    """The verdict on the close scanned after log entry `after`. A close the station refused as
    too early (its manifest still loading: under load the packer's scans can outrun the fetch)
    is scanned again, as a packer told "not now" would, and counted."""
    daemon = station.daemon
    for _ in range(REPEATED_CLOSES):
        answered = lambda e: e.get("msg") in VERDICT_MESSAGES or _close_refused(e)  # noqa: E731
        index, _ = daemon.wait_for(answered, after=after, timeout_s=30)
        entry = daemon.entry(index)
        if not _close_refused(entry):
            return str(entry["msg"]).removeprefix("verdict.").upper()
        station.record.closes_refused += 1
        time.sleep(0.5)
        after = daemon.seen()
        station.rig.close()
    raise RuntimeError(f"the close was refused {REPEATED_CLOSES} times")


def _new_order(rig: SimulatedStation, number: int, template: str) -> str:
    manifest = rig.manifest(template, "C1")
    order_id = f"ORD-{number}"
    lines = tuple(ManifestLine(**line.model_dump()) for line in manifest.lines)
    rig.write_manifest(Manifest(**{**manifest.model_dump(), "order_id": order_id, "lines": lines}))
    return order_id


def _pack_one(station: _Station, k: int, plan: SoakPlan) -> None:
    rig, daemon = station.rig, station.daemon
    template, missing = TEMPLATES[k % len(TEMPLATES)]
    short = k % plan.short_every == plan.short_every - 1
    order_id = _new_order(rig, FIRST_ORDER + k, template)
    station.record.cartons.append((order_id, short))
    box = rig.manifest(order_id, "C1").box_code
    assert box is not None
    seen = daemon.seen()
    rig.pack("S1", order_id, "C1", box, leave_out=(missing,) if short else ())
    verdict = _verdict_of(station, seen)
    if short and verdict == "BLOCK":
        seen = daemon.seen()
        rig.add_unit(missing)
        time.sleep(0.3)  # the scale reports the motion before the close
        rig.close()
        verdict = _verdict_of(station, seen)
    if verdict == "PASS":
        seen = daemon.seen()
        rig.scan(f"1Z{k:016d}")  # the shipping label goes on; the station weighs it again
        index, _ = daemon.wait_for(
            _is_msg("label.confirmed", "verdict.withdrawn"), after=seen, timeout_s=30
        )
        verdict = "PASS" if daemon.entry(index)["msg"] == "label.confirmed" else "WITHDRAWN"
    if verdict != "PASS":
        # A complete carton held by the weight's noise (docs/accuracy.md): a reviewer would
        # look at it; here the packer logs out, which aborts it, and goes on.
        station.record.held.append(order_id)
        rig.scan("LOGOUT")
    rig.clear_platter()


def _packer(station: _Station, start_at: float, stop_at: float, plan: SoakPlan) -> None:
    k = 0
    try:
        while (due := start_at + k * plan.period_s) < stop_at:
            time.sleep(max(0.0, due - time.monotonic()))
            _pack_one(station, k, plan)
            k += 1
    except Exception as exc:  # recorded and reported as a failed check, never swallowed
        station.record.error = f"carton {k}: {exc!r}"


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _GAUGES.values():
            values[name] = float(value)
    return {queue: values[gauge] for queue, gauge in _GAUGES.items()}


def _sample(stations: list[_Station], t_s: float, broker_pid: int) -> float:
    for station in stations:
        rss = status_kb(station.daemon.pid, "VmRSS") / 1024
        station.record.samples.append(Sample(t_s, rss, _scrape(station.api_port)))
    return status_kb(broker_pid, "VmRSS") / 1024


def _progress(message: str) -> None:
    print(f"  soak: {message}", file=sys.stderr, flush=True)


def run_soak(plan: SoakPlan, workdir: Path, log_dir: Path = LOG_DIR) -> SoakResult:
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    broker = MosquittoBroker(workdir / "broker")
    broker.start()
    sink = Sink(broker.host, broker.port, db_path=str(workdir / "sink.db"))
    sink.start()
    stations: list[_Station] = []
    try:
        for i in range(plan.stations):
            stations.append(_Station(i, workdir, broker, log_dir))
        for station in stations:
            station.ready()
        _progress(
            f"{plan.stations} daemons ready; packing {plan.minutes:g} min after a "
            f"{plan.warmup_s:g} s warm-up"
        )
        broker_pid = broker.pid
        assert broker_pid is not None
        pids = [s.daemon.pid for s in stations]
        cpu0 = (sum(cpu_seconds(p) for p in pids), cpu_seconds(broker_pid), own_cpu_seconds())
        started = time.monotonic()
        stop_at = started + plan.warmup_s + plan.minutes * 60
        for i, station in enumerate(stations):
            offset = i * plan.period_s / plan.stations
            station.packer = threading.Thread(
                target=_packer, args=(station, started + offset, stop_at, plan), daemon=True
            )
            station.packer.start()
        broker_rss: list[tuple[float, float]] = []
        while (now := time.monotonic()) < stop_at:
            broker_rss.append((now - started, _sample(stations, now - started, broker_pid)))
            if len(broker_rss) % 12 == 0:
                _progress(f"{now - started:.0f} s, load average {load_average()}")
            time.sleep(max(0.0, now + plan.sample_s - time.monotonic()))
        for station in stations:
            assert station.packer is not None
            station.packer.join(90)
        elapsed = time.monotonic() - started
        cpu1 = (sum(cpu_seconds(p) for p in pids), cpu_seconds(broker_pid), own_cpu_seconds())
        now = time.monotonic() - started
        broker_rss.append((now, _sample(stations, now, broker_pid)))
        # The end: every committed event delivered and every outbox empty (bounded wait).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            outboxes = {s.record.station_id: int(_scrape(s.api_port)["outbox"]) for s in stations}
            committed = {s.record.station_id: s.committed() for s in stations}
            if not any(outboxes.values()) and len(sink.events()) >= sum(committed.values()):
                break
            time.sleep(0.5)
        recorded = {
            (s.record.station_id, order): outcomes
            for s in stations
            for order, outcomes in s.recorded_outcomes().items()
        }
        delivered: dict[str, list[int]] = {}
        verdicts: dict[tuple[str, str], list[str]] = {}
        by_source = {
            event_source(s.rig.site_id, s.record.station_id): s.record.station_id for s in stations
        }
        for payload in sink.payloads():
            sid = by_source.get(str(payload["source"]))
            if sid is None:
                continue
            delivered.setdefault(sid, []).append(int(payload["stationseq"]))
            if payload["type"] == EventType.VERIFICATION_RESULT.value:
                data = payload["data"]
                verdicts.setdefault((sid, data["order_id"]), []).append(data["outcome"])
        return SoakResult(
            plan=plan,
            stations=[s.record for s in stations],
            broker_rss=broker_rss,
            committed=committed,
            delivered=delivered,
            duplicates=len(sink.duplicates),
            verdicts=verdicts,
            recorded=recorded,
            outbox_at_end=outboxes,
            daemons_cpu=100 * (cpu1[0] - cpu0[0]) / elapsed,
            broker_cpu=100 * (cpu1[1] - cpu0[1]) / elapsed,
            simulators_cpu=100 * (cpu1[2] - cpu0[2]) / elapsed,
            elapsed_s=elapsed,
            load=load_average(),
        )
    finally:
        for station in stations:
            station.stop()
        sink.stop()
        sink.close()
        broker.stop()


def figures(result: SoakResult, checks: list[Check]) -> list[Figure]:
    cartons = sum(len(s.cartons) for s in result.stations)
    shorts = sum(short for s in result.stations for _, short in s.cartons)
    held = sum(len(s.held) for s in result.stations)
    refused = sum(s.closes_refused for s in result.stations)
    events = sum(result.committed.values())
    rss_end = [s.samples[-1].rss_mb for s in result.stations]
    out = [
        Figure(
            f"soak: {result.plan.stations} stations, {result.elapsed_s / 60:.1f} min",
            "cartons",
            cartons,
            note=f"{shorts} short (BLOCK, then PASS); {held} complete ones held by weight noise"
            f" (aborted by the packer); {refused} closes refused as too early (manifest still"
            f" loading) and scanned again; {events} events committed, "
            f"{sum(len(v) for v in result.delivered.values())} delivered (unique), "
            f"{result.duplicates} duplicates removed; daemons' CPU {result.daemons_cpu:.0f} % "
            f"of a core, mosquitto {result.broker_cpu:.1f} %, simulators/sink/packers "
            f"{result.simulators_cpu:.0f} %; RSS at the end median "
            f"{statistics.median(rss_end):.1f} MB (max {max(rss_end):.1f}); load {result.load};"
            f" {machine()}",
        )
    ]
    for check in checks:
        out.append(
            Figure(
                f"soak: {check.name}",
                "",
                round(check.value, 3),
                target=f"<= {check.bound:g}" if "slope" not in check.name else f"< {check.bound:g}",
                met=check.met,
                note=check.detail,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = SoakPlan()
    parser.add_argument("--stations", type=int, default=default.stations)
    parser.add_argument("--minutes", type=float, default=default.minutes)
    parser.add_argument("--period", type=float, default=default.period_s, help="s per carton")
    parser.add_argument("--json", type=Path, help="write the samples and checks here")
    args = parser.parse_args(argv)
    plan = SoakPlan(stations=args.stations, minutes=args.minutes, period_s=args.period)
    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        result = run_soak(plan, Path(work))
    checks = assess(result)
    from benchmarks.run import render_table

    table = figures(result, checks)
    print(render_table(table))
    for figure in table:
        if figure.note:
            print(f"{figure.name}: {figure.note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        dumped = asdict(result)
        for name in ("verdicts", "recorded"):
            dumped[name] = {f"{k[0]} {k[1]}": v for k, v in getattr(result, name).items()}
        dumped["checks"] = [asdict(c) for c in checks]
        args.json.write_text(json.dumps(dumped, indent=1) + "\n")
    failed = [c.name for c in checks if not c.met]
    if failed:
        print(f"soak FAILED: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
