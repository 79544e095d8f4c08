"""Channel simulators: a generated carton -> the raw evidence each channel's real, pure code reads.

The simulators stop where the station's own code begins:

- weight: the settled gross reading (real weights + scale noise, rounded to the division) as a
  `WeightMeasurement` -> `station.weight_check.evaluate_weight`;
- RFID: `TagRead`s of the decisive window (tags in the box, a unit left beside it, other orders'
  tags on the table) -> `rfid.window.filter_window` -> `station.rfid_check.rfid_report`;
- vision: one `InsertionObservation` per insertion (new items counted, codes decoded) ->
  `vision.report.build_vision_report`. The count error is calibrated from the shipped model card
  (`VisionModel.from_card`); barcodes are read from units that face up and are not yet covered.

Every random draw comes from a generator seeded by (seed, carton, channel), so a carton's evidence
does not depend on which other cartons or channel mixes were run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.accuracy.world import Carton, Fault, Unit, World, poisson
from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.identity import EpcSkuResolver
from rfid.reads import TagRead
from rfid.window import filter_window
from scale.weighing import scale_error_g
from station.domain import ItemKind
from station.rfid_check import ReaderProblem, rfid_report
from station.verification import ChannelReport, ChannelState, FindingStatus, SkuFinding
from station.weight_check import (
    ScaleState,
    WeightCheckConfig,
    WeightMeasurement,
    detection_power,
    evaluate_weight,
    expected_weight,
    tolerance_g,
)
from vision.barcodes import CodeRead
from vision.observe import InsertionObservation
from vision.report import build_vision_report

CARD = Path(__file__).resolve().parents[2] / "models" / "item_counter.card.json"
WINDOW = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-55),), min_seen_count=5
)
SCAN_BELOW_POWER = 0.999  # the what-if scans a SKU whose absence the scale sees less surely
SCAN_CONFIDENCE = 0.99
_UNSURE_SCALE = (ScaleState.UNSTABLE, ScaleState.ZERO_DRIFT, ScaleState.OVER_CAPACITY)


@dataclass(frozen=True, slots=True)
class VisionModel:
    """The counter's per-insertion error, calibrated from the model card.

    The card measures exact-count accuracy per true item count N on single scenes. A carton is
    packed insertion by insertion and the accumulator counts the new items of each frame, so an
    item the model cannot see (a confident miss, the card's dominant error) is lost once, when it
    goes in; a phantom peak is counted once. Packing N units one by one with nothing covered then
    gives an exact carton count with probability prod over v = 1..N of (1 - hazard(v)), which the
    card says is acc(N): hazard(v) = 1 - acc(v) / acc(v - 1), with acc made non-increasing (pooled
    adjacent violators) because per-count figures rest on ~50 scenes each. Crowding above the
    card's largest count keeps its last hazard. An error is an under-count or an over-count of one
    or two items in the card's error histogram's proportions.
    """

    name: str
    hazard: tuple[float, ...]  # index v - 1: chance the insertion seen with v items miscounts
    errors: tuple[tuple[int, float], ...]  # (error, share) among miscounted insertions

    @classmethod
    def from_card(cls, path: Path = CARD, evaluation_set: str = "holdout") -> VisionModel:
        card = json.loads(path.read_text())
        figures = card["evaluation"]["sets"][evaluation_set]
        by_count = {int(n): a for n, a in figures["accuracy_by_true_count"].items() if int(n) > 0}
        accuracy = _non_increasing([by_count[n] for n in sorted(by_count)])
        hazard, previous = [], 1.0
        for acc in accuracy:
            hazard.append(0.0 if previous <= 0 else max(0.0, 1 - acc / previous))
            previous = acc
        histogram = {int(e): n for e, n in figures["error_histogram"].items() if int(e) != 0}
        total = sum(histogram.values())
        errors = tuple((e, n / total) for e, n in sorted(histogram.items()) if abs(e) <= 2)
        return cls(f"{card['version']} {evaluation_set}", tuple(hazard), errors)

    def scaled(self, factor: float, name: str) -> VisionModel:
        """The same error shape with every hazard times `factor` (what-if for a better model)."""
        return VisionModel(name, tuple(min(1.0, h * factor) for h in self.hazard), self.errors)

    def exact_accuracy(self, items: int) -> float:
        """Chance a carton of `items` units packed one by one, nothing covered, counts exactly."""
        exact = 1.0
        for v in range(1, items + 1):
            exact *= 1 - self.hazard_at(v)
        return exact

    def hazard_at(self, visible: int) -> float:
        return self.hazard[min(visible, len(self.hazard)) - 1] if visible > 0 else 0.0


def _non_increasing(values: list[float]) -> list[float]:
    """Pool adjacent violators: the closest non-increasing sequence (equal weights)."""
    blocks: list[list[float]] = []
    for value in values:
        blocks.append([value, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (a, n), (b, m) = blocks[-2], blocks.pop()
            blocks[-1] = [(a * n + b * m) / (n + m), n + m]
    return [mean for mean, n in blocks for _ in range(int(n))]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the three channels measured for one carton, before their pure code ran."""

    weight: WeightMeasurement
    reads: tuple[TagRead, ...]
    reader_problems: tuple[ReaderProblem, ...]
    insertions: tuple[InsertionObservation, ...]
    camera_up: bool
    scans: Mapping[str, int]  # what-if per-unit scan: units scanned per SKU


class Station:
    """One simulated station: the world's catalog, the site's configuration, the channel code."""

    def __init__(self, world: World, seed: int, vision: VisionModel) -> None:
        self.world = world
        self.seed = seed
        self.vision = vision
        model = world.model
        # The site configured the materials it puts in every box honestly (measured means).
        self.weight_config = WeightCheckConfig(
            paperwork_g=model.paperwork_g,
            paperwork_spread_g=model.paperwork_sd_g,
            fill_g=model.fill_g,
            fill_spread_g=model.fill_sd_g,
        )
        self.resolver = EpcSkuResolver.from_catalog(world.catalog)

    # -- evidence --------------------------------------------------------------------------------

    def evidence(self, carton: Carton) -> Evidence:
        reads, problems = self._rfid(carton)
        insertions, camera_up = self._vision(carton)
        scans = self._scans(carton)
        return Evidence(self._weight(carton), reads, problems, insertions, camera_up, scans)

    def _rng(self, carton: Carton, channel: str) -> random.Random:
        return random.Random(f"{channel}:{self.seed}:{carton.index}:{carton.error.value}")

    def _weight(self, carton: Carton) -> WeightMeasurement:
        rng = self._rng(carton, "weight")
        fault = carton.faults.get("weight")
        if fault is Fault.DOWN:
            return WeightMeasurement(ScaleState.DOWN)
        if fault is Fault.STALE:
            return WeightMeasurement(ScaleState.STALE)
        if fault is Fault.UNSURE:
            return WeightMeasurement(rng.choice(_UNSURE_SCALE))
        true_g = (
            carton.box_true_g + carton.materials_true_g + sum(u.weight_g for u in carton.packed)
        )
        division = self.world.model.division_g
        shown = round((true_g + rng.gauss(0, self.world.model.scale_noise_sd_g)) / division)
        gross = shown * division
        return WeightMeasurement(
            ScaleState.SETTLED, gross_g=gross, scale_error_g=scale_error_g(gross, division)
        )

    def _rfid(self, carton: Carton) -> tuple[tuple[TagRead, ...], tuple[ReaderProblem, ...]]:
        rng = self._rng(carton, "rfid")
        fault = carton.faults.get("rfid")
        if fault is Fault.DOWN:
            return (), (ReaderProblem("platter", ChannelState.DOWN, "reader not answering"),)
        if fault is Fault.STALE:
            return (), (ReaderProblem("platter", ChannelState.STALE, "no reads in the window"),)
        model = self.world.model
        reads: list[TagRead] = []
        for unit in carton.packed:
            reads += _tag_reads(rng, unit, model.tag_rssi_dbm, 25, (1,))
        for unit in carton.beside:
            reads += _tag_reads(rng, unit, model.beside_rssi_dbm, 10, (1,))
        for unit in carton.strays:  # on the table: under this platter's antenna or the next one's
            reads += _tag_reads(rng, unit, model.stray_rssi_dbm, 6, (1, 2))
        return tuple(reads), ()

    def _vision(self, carton: Carton) -> tuple[tuple[InsertionObservation, ...], bool]:
        rng = self._rng(carton, "vision")
        fault = carton.faults.get("vision")
        if fault is Fault.DOWN:
            return (), False
        if fault is Fault.STALE:
            return (), True
        model = self.world.model
        items = self.world.catalog.items
        groups = _insertions(rng, [u for u in carton.packed if items[u.sku].vision_visible])
        observations: list[InsertionObservation] = []
        placed: list[Unit] = []
        covered: set[int] = set()
        for index, group in enumerate(groups):
            for i in range(len(placed)):  # what goes in now may cover what is already there
                if i not in covered and rng.random() < model.covered_per_insertion:
                    covered.add(i)
            placed += group
            visible = [u for i, u in enumerate(placed) if i not in covered]
            codes = tuple(
                _code_read(self.world.truth[u.sku].gtin)
                for u in visible
                if u.code_up and rng.random() < model.code_read
            )
            if rng.random() < model.insertion_unreadable or (index == 0 and fault is Fault.UNSURE):
                reason = "a hand stayed over the carton"
                observations.append(InsertionObservation(index, None, None, {}, codes, reason))
                continue
            new = len(group)
            if rng.random() < self.vision.hazard_at(len(visible)):
                errors, shares = zip(*self.vision.errors, strict=True)
                new = max(0, new + rng.choices(errors, shares)[0])
            observations.append(InsertionObservation(index, new, len(visible), {}, codes))
        return tuple(observations), True

    def uncovered(self, carton: Carton) -> frozenset[str]:
        """SKUs no channel covers, known when the order starts: not tagged, and either a missing
        unit would hide in the weight tolerance (detection power below 0.999), or the SKU is sold
        by weight, or it has look-alike variants (sizes, colours: the WMS knows them) that the
        scale cannot tell apart. Vision is not counted on: whether a code faces the camera is not
        known in advance."""
        catalog, config = self.world.catalog, self.weight_config
        expected = expected_weight(
            carton.expected, catalog, catalog.boxes[carton.box], config.packing_materials()
        )
        scale = scale_error_g(expected.mean_g, self.world.model.division_g)
        tolerance = tolerance_g(expected.sigma_g, scale, config)
        out = set()
        for sku in self.verifiable(carton):
            item = catalog.items[sku]
            if item.rfid_tagged:
                continue
            power = detection_power(item.unit_weight_g or 0.0, tolerance, tolerance / config.z)
            look_alike = self.world.truth[sku].family is not None
            if item.variable_weight or look_alike or power < SCAN_BELOW_POWER:
                out.add(sku)
        return frozenset(out)

    def _scans(self, carton: Carton) -> dict[str, int]:
        """The packer scans every unit of an uncovered SKU as it goes in, and a unit packed in
        error (a variant, another order's unit) when the order has uncovered SKUs: the packer
        takes it for one of them. A left-out unit is sometimes scanned anyway."""
        rng = self._rng(carton, "scan")
        model = self.world.model
        uncovered = self.uncovered(carton)
        scans: dict[str, int] = {}
        for unit in carton.packed:
            if unit.sku in uncovered or (unit.sku in carton.foreign and uncovered):
                scans[unit.sku] = scans.get(unit.sku, 0) + 1 + (rng.random() < model.double_scan)
        for sku, n in carton.missing.items():
            if sku in uncovered:
                forgot = sum(rng.random() < model.scanned_but_left_out for _ in range(n))
                scans[sku] = scans.get(sku, 0) + forgot
        return scans

    # -- the channels' own code ------------------------------------------------------------------

    def reports(self, carton: Carton, evidence: Evidence) -> dict[str, ChannelReport]:
        """The three ChannelReports, each from the channel's real, pure code."""
        catalog = self.world.catalog
        box = catalog.boxes[carton.box]
        weight = evaluate_weight(carton.expected, catalog, box, evidence.weight, self.weight_config)
        window = filter_window(evidence.reads, WINDOW, self.resolver)
        rfid = rfid_report(
            carton.expected,
            catalog,
            window,
            problems=evidence.reader_problems,
            sku_of=lambda epc: self.resolver.resolve(epc).sku,
        )
        vision = build_vision_report(
            evidence.insertions, carton.expected, catalog, camera_up=evidence.camera_up
        )
        scan = per_unit_scan_report(self.verifiable(carton), evidence.scans, self.uncovered(carton))
        return {"weight": weight, "rfid": rfid, "vision": vision, "scan": scan}

    def verifiable(self, carton: Carton) -> dict[str, int]:
        """What the policy must see confirmed: products, as the session passes them."""
        items = self.world.catalog.items
        return {s: n for s, n in carton.expected.items() if items[s].kind is ItemKind.PRODUCT}


def _tag_reads(
    rng: random.Random,
    unit: Unit,
    rssi: tuple[float, float],
    mean_seen: float,
    antennas: tuple[int, ...],
) -> list[TagRead]:
    """The reads one tag gives in the window: a few reports, each of several inventory rounds."""
    if unit.epc is None or not unit.tag_answers:
        return []
    level = rng.gauss(*rssi)  # this tag's coupling here: orientation, distance, what it is on
    antenna = rng.choice(antennas)
    reads = []
    for _ in range(rng.randint(1, 3)):
        seen = poisson(rng, mean_seen / 2)
        if seen:
            rssi_dbm = round(level + rng.gauss(0, 1.5), 1)
            reads.append(
                TagRead(bytes.fromhex(unit.epc), antenna, rssi_dbm, 0.2, 0.9, seen, "platter")
            )
    return reads


def _insertions(rng: random.Random, units: list[Unit]) -> list[list[Unit]]:
    """The packer's insertions: one unit at a time, but two of the same SKU often go in together."""
    groups: list[list[Unit]] = []
    for unit in units:
        if groups and groups[-1][-1].sku == unit.sku and rng.random() < 0.5:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    return groups


def _code_read(ean13: str) -> CodeRead:
    """An EAN-13 as the barcode reader returns it; the catalog's index maps it to its SKU."""
    return CodeRead("EAN13", ean13, "]E0", ean13.encode(), (0.0, 0.0), (), gtin="0" + ean13)


def per_unit_scan_report(
    expected: Mapping[str, int], scans: Mapping[str, int], scanned_skus: frozenset[str]
) -> ChannelReport:
    """What-if: the per-unit scan channel the issue plans (no station code exists yet), reduced
    to its counts. Every unit of `scanned_skus` is scanned as it goes in; a scanned SKU not on
    the order is extra."""
    findings = []
    for sku, n in sorted(expected.items()):
        if sku not in scanned_skus:
            findings.append(SkuFinding(sku, FindingStatus.NOT_APPLICABLE, n, None, 1.0))
            continue
        got = scans.get(sku, 0)
        status = (
            FindingStatus.CONFIRMED
            if got == n
            else FindingStatus.MISSING
            if got < n
            else FindingStatus.EXTRA
        )
        findings.append(SkuFinding(sku, status, n, got, SCAN_CONFIDENCE, f"{got} of {n} scanned"))
    for sku, got in sorted(scans.items()):
        if sku not in expected and got:
            findings.append(SkuFinding(sku, FindingStatus.EXTRA, 0, got, SCAN_CONFIDENCE))
    return ChannelReport("scan", ChannelState.OK, tuple(findings))
