"""Run generated cartons through the channels' code and the station's decision; count what it did.

Per channel mix, a `StationPolicy` as the station's config would build it (the mix's sensors, all
of them required; serial-controlled SKUs scanned unit by unit). Per carton, as the session does at
close: `absence_detection` (how surely the total weight reveals each SKU missing), the mix's
`plan` (which SKUs the packer must scan), the packer's unit scans for those SKUs ->
`evaluate_scans`, and `plan.policy.decide` over the mix's channel reports. Counted:

- short cartons: caught (BLOCK or REVIEW: not PASS) with a 95% Wilson interval, per detectability
  class of the missing SKU (`Coverage.detectability` in the mix's plan) and per error kind;
- complete cartons: false BLOCK and REVIEW (both cost a person's time: they share one budget), and
  why (the verdicts' reason codes);
- short cartons with a required sensor forced faulty: how many PASSed (must be 0).
"""

from __future__ import annotations

import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from benchmarks.accuracy.sensors import Evidence, Station
from benchmarks.accuracy.world import Carton, CartonStream, ErrorKind
from benchmarks.figures import summary
from station.carton_policy import (
    NEVER_ALONE,
    CartonPlan,
    LookalikeAction,
    StationPolicy,
    UncoveredAction,
)
from station.insertion_check import InsertionMemo, InsertionSample
from station.scan_check import UnitScan, evaluate_scans, units_scanned
from station.verification import SCAN_RECOUNT, ChannelReport, Outcome, Verdict


@dataclass(frozen=True, slots=True)
class Mix:
    """One station set-up: the sensors it has (all required but its backups), whether it
    explains the weight's settled steps while packing (the insertion channel), and what it does
    with a SKU no sensor covers."""

    sensors: frozenset[str]
    insertion: bool = True
    uncovered_action: UncoveredAction = "review"
    lookalike_action: LookalikeAction = "warn"
    recount_scan_slips: bool = True  # the station's default ([policy] scan_mismatch_action)
    backup: frozenset[str] = frozenset()  # of the sensors, those required only where needed

    @property
    def required(self) -> frozenset[str]:
        return self.sensors - self.backup

    def policy(self) -> StationPolicy:
        return StationPolicy(
            channels=self.sensors,
            required_channels=self.required,
            backup=self.backup,
            corroborate=NEVER_ALONE,  # as every station's policy (station.config.station_policy)
            scan_serial_controlled=True,
            uncovered_action=self.uncovered_action,
            lookalike_action=self.lookalike_action,
            recount_scan_slips=self.recount_scan_slips,
        )

    @property
    def channels(self) -> tuple[str, ...]:
        """The reports this mix decides on (the unit scans come from the plan)."""
        extra = ("insertion",) if self.insertion else ()
        return (*sorted(self.sensors), *extra)


_ALL = frozenset({"weight", "rfid", "vision"})
MIXES: dict[str, Mix] = {
    "weight only": Mix(frozenset({"weight"}), insertion=False),
    "weight + insertion": Mix(frozenset({"weight"})),
    "weight + insertion, uncovered SKUs scanned": Mix(
        frozenset({"weight"}), uncovered_action="scan"
    ),
    "weight + insertion, uncovered and look-alike SKUs scanned": Mix(
        frozenset({"weight"}), uncovered_action="scan", lookalike_action="scan"
    ),
    "weight + insertion + RFID": Mix(frozenset({"weight", "rfid"})),
    "weight + insertion + vision": Mix(frozenset({"weight", "vision"})),
    "all": Mix(_ALL),
    "all, uncovered SKUs scanned": Mix(_ALL, uncovered_action="scan"),
    "all, uncovered and look-alike SKUs scanned": Mix(
        _ALL, uncovered_action="scan", lookalike_action="scan"
    ),
    # The same, the camera required only where the scale cannot vouch alone.
    "all, scanned as above, camera as backup": Mix(
        _ALL, uncovered_action="scan", lookalike_action="scan", backup=frozenset({"vision"})
    ),
}
Z95 = 1.959964
TAG_UNREAD = "tag_unread"  # the policy's hold for a unit scan (station.verification)
T = TypeVar("T")


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (honest near 0 and 1)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return ((centre - margin) / denominator, (centre + margin) / denominator)


def detectability(carton: Carton, plan: CartonPlan) -> str:
    """The detectability class, in this mix's plan, of the SKU the short carton lacks."""
    coverage = {c.sku: c for c in plan.coverage}
    classes = [coverage[sku].detectability for sku in sorted(carton.missing) if sku in coverage]
    return classes[0] if classes else "none"


@dataclass(frozen=True, slots=True)
class Decision:
    plan: CartonPlan
    verdict: Verdict
    # The insertion channel's clean weight samples, each with what really made its step: the
    # one unit's SKU and grams, or None when the step was not one unit.
    samples: tuple[tuple[InsertionSample, str | None, float | None], ...] = ()
    # What the closes before held the carton for and the packer then did at the table (the
    # reason codes TAG_UNREAD: a unit scan of SKUs whose tags may not answer, SCAN_RECOUNT: a
    # recount); `verdict` is the last close's.
    held_for: frozenset[str] = frozenset()


@dataclass
class MixTally:
    """What one channel mix decided over the generated cartons."""

    complete: Counter[str] = field(default_factory=Counter)  # outcome -> cartons
    complete_causes: Counter[str] = field(default_factory=Counter)  # reason code -> cartons
    complete_faulty: int = 0  # non-PASS complete cartons with a channel of the mix faulty
    # Complete cartons held at a close for a unit scan (tags that may not answer) or a recount
    # of a SKU's scans, and of those how many passed once the packer scanned: no reviewer, a
    # few seconds' work. Per reason code.
    complete_held: Counter[str] = field(default_factory=Counter)
    complete_held_passed: Counter[str] = field(default_factory=Counter)
    short: Counter[str] = field(default_factory=Counter)  # outcome -> cartons
    by_class: dict[str, Counter[str]] = field(default_factory=dict)  # class -> caught/total
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    missed: list[dict[str, object]] = field(default_factory=list)  # a few, for diagnosis
    faulty_short: int = 0  # short cartons with a required channel faulty
    faulty_short_passed: int = 0
    # Short cartons with only a channel faulty that their plan left a backup (the scale would
    # notice any unit missing 99.9% surely): a PASS needs the weight to vouch alone at close.
    backup_faulty_short: int = 0
    backup_faulty_short_passed: int = 0
    # Clean weight samples the station would have kept (passed complete cartons): how many,
    # how many were one unit of the SKU they name, and |sample - that unit's true weight|.
    samples: int = 0
    samples_right: int = 0
    sample_errors_g: list[float] = field(default_factory=list)

    def record_complete(self, decision: Decision, faulty: bool) -> None:
        verdict = decision.verdict
        self.complete[verdict.outcome.value] += 1
        for code in decision.held_for:
            self.complete_held[code] += 1
            self.complete_held_passed[code] += verdict.passed
        if verdict.outcome is Outcome.PASS:
            for sample, true_sku, true_g in decision.samples:
                self.samples += 1
                if true_sku == sample.sku and true_g is not None:
                    self.samples_right += 1
                    self.sample_errors_g.append(abs(sample.grams - true_g))
        else:
            self.complete_faulty += faulty
            for code in sorted({_cause(r.code, r.channel) for r in verdict.reasons}):
                self.complete_causes[code] += 1

    def record_short(self, verdict: Verdict, carton: Carton, klass: str) -> None:
        caught = verdict.outcome is not Outcome.PASS
        self.short[verdict.outcome.value] += 1
        for table, key in ((self.by_class, klass), (self.by_kind, carton.error.value)):
            counter = table.setdefault(key, Counter())
            counter["total"] += 1
            counter["caught"] += caught
        if not caught and len(self.missed) < 20:
            self.missed.append(
                {
                    "carton": carton.index,
                    "error": carton.error.value,
                    "class": klass,
                    "missing": carton.missing,
                    "instead": carton.foreign,
                    "units": carton.units,
                }
            )

    def record_faulty_short(self, verdict: Verdict, backup: bool = False) -> None:
        passed = verdict.outcome is Outcome.PASS
        if backup:
            self.backup_faulty_short += 1
            self.backup_faulty_short_passed += passed
        else:
            self.faulty_short += 1
            self.faulty_short_passed += passed

    def summary(self) -> dict[str, object]:
        complete_n = sum(self.complete.values())
        short_n = sum(self.short.values())
        caught = short_n - self.short["PASS"]
        low, high = wilson(caught, short_n)
        return {
            "short_cartons": short_n,
            "caught": caught,
            "caught_by_block": self.short["BLOCK"],
            "caught_by_review": self.short["REVIEW"],
            "catch_rate": caught / short_n if short_n else None,
            "catch_ci95": [low, high],
            "complete_cartons": complete_n,
            "false_block_rate": self.complete["BLOCK"] / complete_n if complete_n else None,
            "review_rate": self.complete["REVIEW"] / complete_n if complete_n else None,
            "false_block_plus_review_rate": (complete_n - self.complete["PASS"]) / complete_n
            if complete_n
            else None,
            "complete_not_passed_with_a_faulty_channel": self.complete_faulty,
            "complete_held_for_a_unit_scan": self.complete_held[TAG_UNREAD],
            "complete_held_for_a_unit_scan_then_passed": self.complete_held_passed[TAG_UNREAD],
            "held_for_a_unit_scan_rate": self.complete_held[TAG_UNREAD] / complete_n
            if complete_n
            else None,
            "complete_held_for_a_recount": self.complete_held[SCAN_RECOUNT],
            "complete_held_for_a_recount_then_passed": self.complete_held_passed[SCAN_RECOUNT],
            "held_for_a_recount_rate": self.complete_held[SCAN_RECOUNT] / complete_n
            if complete_n
            else None,
            "complete_causes": dict(self.complete_causes.most_common()),
            "catch_by_class": _rates(self.by_class),
            "catch_by_error": _rates(self.by_kind),
            "clean_samples": {
                "samples": self.samples,
                "per_passed_complete_carton": self.samples / self.complete["PASS"]
                if self.complete["PASS"]
                else None,
                "one_unit_of_the_named_sku": self.samples_right / self.samples
                if self.samples
                else None,
                "abs_error_g_median_p99": list(summary(self.sample_errors_g))
                if self.sample_errors_g
                else None,
            },
            "faulty_short_cartons": self.faulty_short,
            "faulty_short_passed": self.faulty_short_passed,
            "backup_faulty_short_cartons": self.backup_faulty_short,
            "backup_faulty_short_passed": self.backup_faulty_short_passed,
            "missed_examples": self.missed,
        }


def _cause(code: str, channel: str | None) -> str:
    return f"{channel}:{code}" if channel and not code.startswith(channel) else code


def _rates(table: Mapping[str, Counter[str]]) -> dict[str, dict[str, object]]:
    out = {}
    for key, counter in sorted(table.items()):
        low, high = wilson(counter["caught"], counter["total"])
        out[key] = {
            "cartons": counter["total"],
            "caught": counter["caught"],
            "rate": counter["caught"] / counter["total"],
            "ci95": [low, high],
        }
    return out


class Evaluation:
    """One world, one station, every mix; feed it cartons."""

    def __init__(self, station: Station, mixes: Mapping[str, Mix] = MIXES) -> None:
        self.station = station
        self.mixes = dict(mixes)
        self.policies = {name: mix.policy() for name, mix in self.mixes.items()}
        self.tallies = {name: MixTally() for name in self.mixes}

    def decisions(self, carton: Carton) -> dict[str, Decision]:
        """Every mix's plan and verdict for `carton`, on the same evidence."""
        station = self.station
        evidence = station.evidence(carton)
        reports = station.reports(carton, evidence)
        expected = station.verifiable(carton)
        power = station.weight_power(carton)
        lookalike_power = station.lookalike_power(carton)
        # The insertion channel pairs its steps with the unit scans, which follow the mix's
        # plan: one report per set of must-scan SKUs (most mixes share one).
        insertion: dict[frozenset[str], ChannelReport] = {}
        out = {}
        for name, mix in self.mixes.items():
            plan = self.policies[name].plan(
                expected, station.world.catalog, power, lookalike_power=lookalike_power
            )
            timed = station.unit_scans(carton, evidence, plan.must_scan)
            if mix.insertion and plan.must_scan not in insertion:
                insertion[plan.must_scan] = station.insertion(carton, evidence, timed)
            checked = insertion.get(plan.must_scan)
            mixed = {**reports, "insertion": checked.report if checked else reports["insertion"]}
            samples = (
                tuple((s, *_made(carton, evidence, s)) for s in checked.samples) if checked else ()
            )
            sensors = [mixed[c] for c in mix.channels]
            verdict, held_for = _at_the_table(
                station, carton, evidence, expected, plan, sensors, timed
            )
            out[name] = Decision(plan, verdict, samples, held_for)
        return out

    def run_complete(self, cartons: Iterable[Carton]) -> None:
        for carton in cartons:
            for name, decision in self.decisions(carton).items():
                faulty = any(c in carton.faults for c in self.mixes[name].sensors)
                self.tallies[name].record_complete(decision, faulty)

    def run_short(self, cartons: Iterable[Carton]) -> None:
        for carton in cartons:
            for name, decision in self.decisions(carton).items():
                klass = detectability(carton, decision.plan)
                self.tallies[name].record_short(decision.verdict, carton, klass)

    def run_faulty_short(self, cartons: Iterable[Carton]) -> None:
        for carton in cartons:
            for name, decision in self.decisions(carton).items():
                # Required or a backup in this carton's plan (a backup camera the plan needed is
                # required there, and held to the rule for required channels).
                policy = decision.plan.policy
                if any(c in carton.faults for c in policy.required_channels):
                    self.tallies[name].record_faulty_short(decision.verdict)
                elif any(c in carton.faults for c in policy.backup):
                    self.tallies[name].record_faulty_short(decision.verdict, backup=True)


def _at_the_table(
    station: Station,
    carton: Carton,
    evidence: Evidence,
    expected: Mapping[str, int],
    plan: CartonPlan,
    sensors: list[ChannelReport],
    timed: tuple[UnitScan, ...],
) -> tuple[Verdict, frozenset[str]]:
    """Close, and while the verdict asks for scans at the table, do as the screen says and close
    again (the same sensors' evidence, the scans changed): a unit scan of each unit of SKUs whose
    tags may not answer adds scans; a recount replaces the SKU's scans, as the session counts
    them afresh. Two requests at most (a recount's second mismatch stands). The final verdict,
    and the reason codes the packer acted on."""
    scans = timed
    recounted: frozenset[str] = frozenset()
    held_for: set[str] = set()
    for round_ in range(1, 4):
        report = evaluate_scans(expected, units_scanned(scans), plan.must_scan)
        policy = replace(plan.policy, recounted=recounted)
        verdict = policy.decide(expected, sensors + ([report] if report else []))
        wanted, recount = _asked(verdict, TAG_UNREAD), _asked(verdict, SCAN_RECOUNT)
        if round_ == 3 or not (wanted or recount):
            break
        if wanted:
            held_for.add(TAG_UNREAD)
            scans += station.rescans(carton, evidence, wanted, round_)
        if recount:
            held_for.add(SCAN_RECOUNT)
            again = station.rescans(carton, evidence, recount, round_)
            scans = tuple(s for s in scans if s.sku not in recount) + again
            recounted |= recount
    return verdict, frozenset(held_for)


def _asked(verdict: Verdict, code: str) -> frozenset[str]:
    return frozenset(r.sku for r in verdict.reasons if r.code == code and r.sku)


def _made(
    carton: Carton, evidence: Evidence, sample: InsertionSample
) -> tuple[str | None, float | None]:
    """What really went in at the sample's step: one unit's SKU and grams, or (None, None) when
    it was not one unit alone."""
    units = [u for u, at in zip(carton.packed, evidence.went_in_at, strict=True) if at == sample.at]
    alone = len(units) == 1 and sample.at not in evidence.shared_moves
    return (units[0].sku, units[0].weight_g) if alone else (None, None)


def decision_times(
    stream: CartonStream, station: Station, rounds: int, units: int = 100
) -> dict[str, dict[str, float] | int]:
    """Milliseconds to decide cartons of `units` units (half complete, half one unit short) in
    the mix "all, uncovered SKUs scanned", in parts:

    - "decide": what the station runs at close: the plan, evaluate_weight, evaluate_insertions
      (the beam search over the settled steps, after the daemon explained every step as it came:
      the close adds the last), evaluate_scans and the policy's decide over all reports (the
      issue's 5 ms target);
    - "insertion": evaluate_insertions at close alone (part of "decide");
    - "insertion while packing": evaluate_insertions after each step, with the scans made by
      then (the daemon runs it in a thread while the packer packs);
    - "decision": "decide" without "insertion": plan, weight, scans and the policy;
    - "channel reports": filter_window + rfid_report (EPC decoding included) and
      build_vision_report, which the RFID and vision channels run at close as well.

    Both wall and thread CPU time are kept: the code is pure and CPU-bound, and on a shared
    machine the wall time's tail is the scheduler's (another process ran meanwhile). The heap
    built before (by now this process holds the whole evaluation) is frozen out of the garbage
    collector meanwhile: a full collection of it falling into a close took 50-60 ms, which is
    this benchmark's, not the decision's (a daemon's heap is one station's).
    """
    gc.freeze()
    try:
        return _decision_times(stream, station, rounds, units)
    finally:
        gc.unfreeze()


def _decision_times(
    stream: CartonStream, station: Station, rounds: int, units: int
) -> dict[str, dict[str, float] | int]:
    policy = MIXES["all, uncovered SKUs scanned"].policy()
    catalog = station.world.catalog
    samples: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[..., T], *args: object) -> T:
        started, started_cpu = time.perf_counter(), time.thread_time()
        result = call(*args)
        samples.setdefault(f"{name} cpu", []).append((time.thread_time() - started_cpu) * 1000)
        samples.setdefault(f"{name} wall", []).append((time.perf_counter() - started) * 1000)
        return result

    def close(
        carton: Carton,
        evidence: Evidence,
        scanned: tuple[UnitScan, ...],
        sensors: Mapping[str, ChannelReport],
        memo: InsertionMemo,
    ) -> Verdict:
        expected = station.verifiable(carton)
        plan = policy.plan(
            expected,
            catalog,
            station.weight_power(carton),
            lookalike_power=station.lookalike_power(carton),
        )
        weight = station.weight_report(carton, evidence)
        insertion = timed("insertion", station.insertion_report, carton, evidence, scanned, memo)
        scans = evaluate_scans(expected, units_scanned(scanned), plan.must_scan)
        reports = [weight, insertion, *sensors.values(), *([scans] if scans else [])]
        return plan.policy.decide(expected, reports)

    for i in range(rounds):
        error = ErrorKind.LEFT_OUT if i % 2 else ErrorKind.NONE
        carton = stream.carton(1_000_000 + i, error, units=units)
        evidence = station.evidence(carton)
        sensors = timed("channel reports", station.sensor_reports, carton, evidence)
        # The packer's scans (the simulator, untimed) follow the plan's must-scan SKUs.
        plan = policy.plan(
            station.verifiable(carton),
            catalog,
            station.weight_power(carton),
            lookalike_power=station.lookalike_power(carton),
        )
        scanned = station.unit_scans(carton, evidence, plan.must_scan)
        memo = InsertionMemo()
        for done, step in enumerate(evidence.steps, start=1):
            so_far = tuple(scan for scan in scanned if scan.at <= step.at)
            live = station.insertion_report
            timed("insertion while packing", live, carton, evidence, so_far, memo, done)
        timed("decide", close, carton, evidence, scanned, sensors, memo)
        # The decision proper: the insertion channel's explanation is that channel's own work
        # (the daemon runs it in a thread at close, beside the RFID and vision reports).
        for clock in ("cpu", "wall"):
            took = samples[f"decide {clock}"][-1] - samples[f"insertion {clock}"][-1]
            samples.setdefault(f"decision {clock}", []).append(took)
    out: dict[str, dict[str, float] | int] = {"units": units, "rounds": rounds}
    for name, values in samples.items():
        median, p99 = summary(values)
        out[name] = {"median_ms": median, "p99_ms": p99}
    return out
