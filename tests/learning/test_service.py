"""Learned weights fed from the daemon's effects, kept in a real SQLite file."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from station.carton_policy import Coverage
from station.clock import ManualClock
from station.domain import (
    BoxType,
    Catalog,
    CatalogItem,
    ItemKind,
    Manifest,
    ManifestLine,
    expected_units,
)
from station.insertion_check import SCANNED_WEIGHT_MISMATCH, InsertionSample
from station.learning.estimator import LearningConfig, SampleSource, WeightSample
from station.learning.service import LearnedWeights
from station.learning.store import FILE_NAME, LearnedWeightStore, Subject
from station.session import (
    AttemptRecord,
    CollectEvidence,
    RecordAttempt,
    RecordAudit,
    RecordWeightSample,
    WeighSubject,
    WeightInfo,
)
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Reason,
    SkuFinding,
    VerificationPolicy,
)
from station.weight_check import ScaleState, WeightCheckConfig, WeightMeasurement, evaluate_weight

# The site's catalog says a mug weighs 380 g; real mugs weigh 412 g.
CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=380, weight_spread_g=4),
        CatalogItem(sku="TEA", name="Tea", unit_weight_g=268, weight_spread_g=3),
        CatalogItem(
            sku="NOTE", name="Note", kind=ItemKind.INSERT, unit_weight_g=6, weight_spread_g=1
        ),
        CatalogItem(sku="CHEESE", name="Cheese", unit_weight_g=500, variable_weight=True),
    ],
    [BoxType(code="BOX-S", name="Small box", tare_g=180, tare_spread_g=5)],
)
TRUE_MUG_G, TRUE_BOX_G = 412.0, 180.0
WEIGHT = WeightCheckConfig(paperwork_g=6, paperwork_spread_g=1)
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def learner(tmp_path: Path, **config) -> LearnedWeights:
    learning = LearningConfig(**({"min_samples": 10} | config))
    store = LearnedWeightStore(tmp_path / FILE_NAME, "dc-1", "pack-01", learning.max_samples)
    return LearnedWeights(learning, CATALOG, WEIGHT, store, ManualClock())


def manifest(order: str, lines: dict[str, int]) -> Manifest:
    return Manifest(
        order_id=order,
        carton_id="C1",
        version=1,
        lines=tuple(
            ManifestLine(line_id=str(i), sku=sku, quantity=n)
            for i, (sku, n) in enumerate(lines.items(), 1)
        ),
    )


class Packer:
    """Packs real (simulated) cartons and hands the learner the effects the daemon would."""

    def __init__(self, learned: LearnedWeights, seed: int = 1) -> None:
        self.learned = learned
        self.rng = random.Random(seed)
        self.orders = 0
        self.box_g = TRUE_BOX_G  # what the box really weighs

    def carton(
        self,
        lines: dict[str, int],
        short: int = 0,
        scanned: dict[str, int] | None = None,
        extra_reports: tuple[ChannelReport, ...] = (),
        tared: bool = False,
        mug_steps: tuple[float, ...] = (),
        coverage: tuple[Coverage, ...] = (),
    ) -> tuple[Manifest, AttemptRecord]:
        """`mug_steps`: the per-insertion channel's clean steps of single scanned mugs, offered
        at close (after the close's evidence request, before the verdict, as the daemon does)."""
        self.orders += 1
        m = manifest(f"ORD-{self.orders}", lines)
        units = expected_units(m, CATALOG)
        true = {"MUG": TRUE_MUG_G, "TEA": 268.0, "NOTE": 6.0, "CHEESE": 512.0}
        gross = self.rng.gauss(self.box_g, 5) + self.rng.gauss(6, 1)
        for sku, n in units.items():
            count = n - short if sku == "MUG" else n
            gross += sum(self.rng.gauss(true[sku], 3) for _ in range(count))
        box = CATALOG.boxes["BOX-S"]
        measurement = (
            WeightMeasurement(ScaleState.SETTLED, net_g=gross - self.box_g)
            if tared
            else WeightMeasurement(ScaleState.SETTLED, gross_g=gross)
        )
        report = evaluate_weight(units, CATALOG, box, measurement, WEIGHT)
        verdict = VerificationPolicy().decide(
            {s: n for s, n in units.items() if s != "NOTE"}, (report, *extra_reports)
        )
        record = AttemptRecord(
            order_id=m.order_id,
            carton_id="C1",
            manifest_version=1,
            attempt=1,
            packer_badge="P1",
            box_code="BOX-S",
            closed_by="code",
            shipping_label=None,
            mode="shadow",
            verdict=verdict,
            scanned_units=scanned or {},
            weight=WeightInfo(gross, None, None),
            decided_at=NOW,
            coverage=coverage,
        )
        collect = CollectEvidence(1, box, m)
        self.learned.on_effect(collect)
        samples = tuple(InsertionSample("MUG", g, float(i)) for i, g in enumerate(mug_steps))
        self.learned.offer_insertion_samples(collect, samples)
        self.learned.on_effect(RecordAttempt(record))
        return m, record


def test_passed_single_sku_cartons_teach_the_unit_weight(tmp_path):
    learned = learner(tmp_path)
    packer = Packer(learned)
    for _ in range(30):  # the catalog is right about tea: these cartons PASS
        packer.carton({"TEA": 3, "NOTE": 1})
    estimate = learned.estimate(Subject.SKU, "TEA")
    assert estimate.samples == 30 and estimate.confident
    assert abs(estimate.mean_g - 268) < 1.5


def test_blocked_cartons_teach_nothing_unless_something_else_confirms_the_count(tmp_path):
    learned = learner(tmp_path)
    packer = Packer(learned)
    _, record = packer.carton({"MUG": 2})  # the catalog is 64 g light for two mugs: BLOCK
    assert not record.verdict.passed
    assert learned.estimate(Subject.SKU, "MUG") is None
    packer.carton({"MUG": 2}, scanned={"MUG": 2})  # the packer scanned both mugs
    packer.carton({"MUG": 2}, scanned={"MUG": 1})  # a count that does not match: nothing
    samples = learned.store.samples(Subject.SKU, "MUG")
    assert len(samples) == 1 and abs(samples[0].grams_per_unit - TRUE_MUG_G) < 8


def test_another_channel_counting_the_units_confirms_them(tmp_path):
    learned = learner(tmp_path)
    rfid = ChannelReport(
        "rfid", ChannelState.OK, (SkuFinding("MUG", FindingStatus.CONFIRMED, 2, 2, 0.99),)
    )
    Packer(learned).carton({"MUG": 2}, extra_reports=(rfid,))
    assert learned.store.sources(Subject.SKU, "MUG") == {"single_sku_carton": 1}
    extra = ChannelReport(
        "rfid",
        ChannelState.OK,
        (
            SkuFinding("MUG", FindingStatus.CONFIRMED, 2, 2, 0.99),
            SkuFinding("TEA", FindingStatus.EXTRA, 0, 1, 0.99),
        ),
    )
    Packer(learned, seed=2).carton({"MUG": 2}, extra_reports=(extra,))  # a tea in it too
    assert len(learned.store.samples(Subject.SKU, "MUG")) == 1


def test_a_channel_the_plan_does_not_count_on_confirms_nothing(tmp_path):
    """A camera on trial (advisory) or ignored for mugs decides nothing, so its count of two
    mugs in a carton holding one does not teach the station a mug weighs 206 g."""
    learned = learner(tmp_path)
    vision = ChannelReport(
        "vision", ChannelState.OK, (SkuFinding("MUG", FindingStatus.CONFIRMED, 2, 2, 0.99),)
    )
    plan = (Coverage("MUG", 0.99, ("weight",), must_scan=False, uncovered=False),)
    packer = Packer(learned)
    packer.carton({"MUG": 2}, short=1, extra_reports=(vision,), coverage=plan)
    assert learned.store.samples(Subject.SKU, "MUG") == []
    counted_on = (Coverage("MUG", 0.99, ("weight", "vision"), must_scan=False, uncovered=False),)
    packer.carton({"MUG": 2}, extra_reports=(vision,), coverage=counted_on)
    assert learned.store.sources(Subject.SKU, "MUG") == {"single_sku_carton": 1}


def test_a_held_carton_shipped_short_or_taken_off_withdraws_what_its_block_taught(tmp_path):
    """Blocked, but the packer's scans vouched for two mugs: a sample. A reviewer then ships it
    short of a mug (or it is taken off the station unsettled): the scans were wrong, or may
    have been, so the sample goes."""
    learned = learner(tmp_path)
    packer = Packer(learned)
    for ending in ("carton.released", "carton.aborted"):
        m, record = packer.carton({"MUG": 2}, short=1, scanned={"MUG": 2})
        assert not record.verdict.passed
        assert len(learned.store.samples(Subject.SKU, "MUG")) == 1
        data = {"order_id": m.order_id, "carton_id": "C1", "missing": [{"sku": "MUG"}]}
        learned.on_effect(RecordAudit(ending, data, NOW))
        assert learned.store.samples(Subject.SKU, "MUG") == []
        assert learned.estimate(Subject.SKU, "MUG") is None


def test_a_reviewer_release_with_nothing_missing_confirms_the_carton(tmp_path):
    learned = learner(tmp_path, learn_from_unit_scans=False)
    packer = Packer(learned)
    m, _ = packer.carton({"MUG": 1}, scanned={"MUG": 1})
    assert learned.estimate(Subject.SKU, "MUG") is None  # scans do not count here
    release = {"order_id": m.order_id, "carton_id": "C1", "missing": []}
    learned.on_effect(RecordAudit("carton.released", release, NOW))
    assert len(learned.store.samples(Subject.SKU, "MUG")) == 1
    m, _ = packer.carton({"MUG": 1})
    short = {"order_id": m.order_id, "carton_id": "C1", "missing": [{"sku": "MUG"}]}
    learned.on_effect(RecordAudit("carton.released", short, NOW))  # shipped short: no sample
    assert len(learned.store.samples(Subject.SKU, "MUG")) == 1


@pytest.mark.parametrize(
    "lines", [{"MUG": 1, "TEA": 1}, {"CHEESE": 1}], ids=["two skus", "variable weight"]
)
def test_only_single_sku_cartons_of_weighable_items_are_samples(tmp_path, lines):
    learned = learner(tmp_path)
    Packer(learned).carton(lines, scanned=lines)
    assert learned.store.keys(Subject.SKU) == []


def test_mode_off_learns_nothing_from_cartons(tmp_path):
    learned = learner(tmp_path, mode="off")
    Packer(learned).carton({"TEA": 2})
    assert learned.store.keys(Subject.SKU) == []


def test_use_mode_replaces_confident_weights_and_says_so(tmp_path):
    learned = learner(tmp_path, mode="use")
    packer = Packer(learned)
    for _ in range(12):
        packer.carton({"MUG": 2}, scanned={"MUG": 2})
    for grams in (179.0, 181.0, 180.0, 182.0, 178.0) * 2:
        learned.record_capture(
            RecordWeightSample(WeighSubject("box", "BOX-S"), grams, 1.0, "P1", NOW)
        )
    weights = learned.effective(["MUG", "TEA"], CATALOG.boxes["BOX-S"])
    assert weights.provenance == {"MUG": "learned", "TEA": "catalog", "box:BOX-S": "learned"}
    assert abs(weights.catalog.items["MUG"].unit_weight_g - TRUE_MUG_G) < 3
    assert weights.catalog.items["TEA"].unit_weight_g == 268
    assert abs(weights.box.tare_g - 180) < 1.5
    assert CATALOG.items["MUG"].unit_weight_g == 380  # the catalog itself is untouched
    # The weight check with the learned mug weight passes a complete two-mug carton.
    gross = 180 + 6 + 2 * TRUE_MUG_G
    report = evaluate_weight(
        {"MUG": 2},
        weights.catalog,
        weights.box,
        WeightMeasurement(ScaleState.SETTLED, gross_g=gross),
        WEIGHT,
        weights.provenance,
    )
    assert report.discrepancy.value == "none" and report.provenance["MUG"] == "learned"


def test_report_mode_keeps_the_catalog(tmp_path):
    learned = learner(tmp_path)  # default: report
    packer = Packer(learned)
    for _ in range(12):
        packer.carton({"MUG": 2}, scanned={"MUG": 2})
    assert learned.confident(Subject.SKU, "MUG") is not None
    weights = learned.effective(["MUG"], CATALOG.boxes["BOX-S"])
    assert weights.catalog is CATALOG and weights.box == CATALOG.boxes["BOX-S"]
    assert weights.provenance == {"MUG": "catalog", "box:BOX-S": "catalog"}


def test_weigh_one_unit_captures(tmp_path):
    learned = learner(tmp_path)
    capture = learned.record_capture
    capture(RecordWeightSample(WeighSubject("unit", "TEA", 6, "Tea"), 1608.0, 1.0, "P1", NOW))
    capture(RecordWeightSample(WeighSubject("unknown", "4099999999999"), 55.5, 0.5, "P1", NOW))
    (sample,) = learned.store.samples(Subject.SKU, "TEA")
    assert sample == WeightSample(
        268.0, 6, pytest.approx(1.0 / 3**0.5 / 6), SampleSource.UNIT_WEIGHED
    )
    (unknown,) = learned.store.unknown_items()
    assert (unknown.barcode, unknown.grams, unknown.packer_badge) == ("4099999999999", 55.5, "P1")


def test_carton_samples_are_reduced_again_once_their_box_is_weighed(tmp_path):
    """The catalog's box is 40 g light (220 g real): two-mug cartons teach 412 + 20 g until
    the box is weighed; then every one of them subtracts the box's real tare."""
    learned = learner(tmp_path)
    packer = Packer(learned)
    packer.box_g = 220.0
    for _ in range(12):
        packer.carton({"MUG": 2}, scanned={"MUG": 2})
    assert abs(learned.estimate(Subject.SKU, "MUG").mean_g - (TRUE_MUG_G + 20)) < 4
    for grams in (219.0, 221.0, 220.0, 220.5, 219.5, 220.0, 221.0, 219.0, 220.0, 220.0):
        box = WeighSubject("box", "BOX-S", 1, "Small box")
        learned.record_capture(RecordWeightSample(box, grams, 1.0, "P1", NOW))
    assert learned.confident(Subject.BOX, "BOX-S") is not None
    assert abs(learned.estimate(Subject.SKU, "MUG").mean_g - TRUE_MUG_G) < 4


def test_a_store_from_before_tares_were_kept_opens_and_keeps_its_samples(tmp_path):
    path = tmp_path / FILE_NAME
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE samples (id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL,"
        " key TEXT NOT NULL, grams_per_unit REAL NOT NULL, units INTEGER NOT NULL,"
        " noise_g REAL NOT NULL, source TEXT NOT NULL, confirmed_by TEXT NOT NULL, ref TEXT,"
        " site TEXT NOT NULL, station TEXT NOT NULL, at TEXT NOT NULL);"
        "INSERT INTO samples (subject, key, grams_per_unit, units, noise_g, source,"
        " confirmed_by, ref, site, station, at) VALUES ('sku', 'MUG', 412.0, 2, 2.5,"
        " 'single_sku_carton', 'pass', 'ORD-1/C1', 'dc-1', 'pack-01', '2026-11-20');"
    )
    db.commit()
    db.close()
    store = LearnedWeightStore(path, "dc-1", "pack-01", 200)
    assert store.samples(Subject.SKU, "MUG") == [
        WeightSample(412.0, 2, 2.5, SampleSource.SINGLE_SKU_CARTON)
    ]
    store.close()


def test_a_data_directory_moved_to_another_site_learns_afresh(tmp_path):
    store = LearnedWeightStore(tmp_path / FILE_NAME, "dc-1", "pack-01", 200)
    store.add(Subject.SKU, "MUG", WeightSample(412.0), "pass", NOW)
    store.close()
    moved = LearnedWeightStore(tmp_path / FILE_NAME, "dc-2", "pack-01", 200)
    assert moved.samples(Subject.SKU, "MUG") == [] and moved.keys(Subject.SKU) == []
    moved.close()


def test_insertion_samples(tmp_path):
    learned = learner(tmp_path)
    assert learned.record_insertion_sample("MUG", 411.0, "unit_scan")
    assert not learned.record_insertion_sample("CHEESE", 480.0, "unit_scan")
    assert not learned.record_insertion_sample("NOPE", 10.0, "rfid")
    assert not learned.record_insertion_sample("MUG", -3.0, "rfid")
    assert learned.store.sources(Subject.SKU, "MUG") == {"insertion": 1}


def test_the_store_keeps_the_latest_samples_and_one_per_carton(tmp_path):
    store = LearnedWeightStore(tmp_path / FILE_NAME, "dc-1", "pack-01", max_samples=10)
    for i in range(25):
        store.add(Subject.SKU, "MUG", WeightSample(float(i + 1)), "pass", NOW)
    kept = [s.grams_per_unit for s in store.samples(Subject.SKU, "MUG")]
    assert kept == [float(i) for i in range(16, 26)]
    store.add(Subject.SKU, "TEA", WeightSample(100.0), "pass", NOW, ref="ORD-1/C1")
    store.add(Subject.SKU, "TEA", WeightSample(101.0), "pass", NOW, ref="ORD-1/C1")
    assert [s.grams_per_unit for s in store.samples(Subject.SKU, "TEA")] == [101.0]
    store.close()
    reopened = LearnedWeightStore(tmp_path / FILE_NAME, "dc-1", "pack-01", max_samples=10)
    assert reopened.keys(Subject.SKU) == ["MUG", "TEA"]
    assert len(reopened.samples(Subject.SKU, "MUG")) == 10
    reopened.close()


def test_a_carton_weighed_with_its_box_tared_away_is_not_a_sample(tmp_path):
    learned = learner(tmp_path)
    _, record = Packer(learned).carton({"TEA": 2}, tared=True)
    assert record.verdict.passed
    assert learned.store.keys(Subject.SKU) == []


def test_scan_confirmed_steps_are_kept_only_once_the_carton_passes(tmp_path):
    learned = learner(tmp_path)
    packer = Packer(learned)

    def insertion_samples() -> list[float]:
        return [
            s.grams_per_unit
            for s in learned.store.samples(Subject.SKU, "MUG")
            if s.source is SampleSource.INSERTION
        ]

    rfid = ChannelReport(
        "rfid", ChannelState.OK, (SkuFinding("TEA", FindingStatus.CONFIRMED, 1, 1, 0.99),)
    )
    # Tea's catalog weight is right: the carton passes, its two mug steps are kept...
    _, passed = packer.carton({"TEA": 1}, extra_reports=(rfid,), mug_steps=(411.0, 413.5))
    assert passed.verdict.passed
    assert insertion_samples() == [411.0, 413.5]
    # ...a blocked carton's are not (its steps may be the wrong units)...
    _, blocked = packer.carton({"MUG": 2}, mug_steps=(409.0, 414.0))
    assert not blocked.verdict.passed
    assert insertion_samples() == [411.0, 413.5]
    # ...unless a reviewer releases it whole.
    release = {"order_id": blocked.order_id, "carton_id": "C1", "missing": []}
    learned.on_effect(RecordAudit("carton.released", release, NOW))
    assert insertion_samples() == [411.0, 413.5, 409.0, 414.0]
    # Released short: nothing. Reopened from its file: the same samples.
    _, short = packer.carton({"MUG": 2}, short=1, mug_steps=(412.0,))
    release = {"order_id": short.order_id, "carton_id": "C1", "missing": [{"sku": "MUG"}]}
    learned.on_effect(RecordAudit("carton.released", release, NOW))
    assert insertion_samples() == [411.0, 413.5, 409.0, 414.0]
    learned.close()
    reopened = LearnedWeightStore(tmp_path / FILE_NAME, "dc-1", "pack-01", 100)
    assert reopened.sources(Subject.SKU, "MUG")["insertion"] == 4


def test_steps_of_an_earlier_attempt_are_not_kept_at_a_later_pass(tmp_path):
    learned = learner(tmp_path)
    packer = Packer(learned)
    m, record = packer.carton({"TEA": 1})
    box = CATALOG.boxes["BOX-S"]
    steps = (InsertionSample("MUG", 412.0, 1.0),)
    learned.offer_insertion_samples(CollectEvidence(2, box, m), steps)  # attempt 2's steps
    learned.on_effect(RecordAttempt(replace(record, attempt=3)))  # attempt 3 passes
    assert learned.store.samples(Subject.SKU, "MUG") == []


def test_mode_off_keeps_no_steps(tmp_path):
    learned = learner(tmp_path, mode="off")
    Packer(learned).carton({"TEA": 1}, mug_steps=(411.0,))
    assert learned.store.keys(Subject.SKU) == []


def test_a_scanned_units_step_off_its_catalog_weight_does_not_stop_learning(tmp_path):
    """The steps say the scanned mugs weigh other than the catalog's 380 g: that is what a wrong
    catalog weight looks like, so the scanned count still confirms the carton; any other
    reason a channel holds the carton for a person does not."""
    learned = learner(tmp_path)

    def held(code: str) -> ChannelReport:
        reason = Reason(code, "held", "insertion", "MUG")
        finding = SkuFinding("MUG", FindingStatus.UNCERTAIN, 2, 2, 1.0)
        return ChannelReport("insertion", ChannelState.OK, (finding,), review=(reason,))

    packer = Packer(learned)
    packer.carton({"MUG": 2}, scanned={"MUG": 2}, extra_reports=(held(SCANNED_WEIGHT_MISMATCH),))
    assert len(learned.store.samples(Subject.SKU, "MUG")) == 1
    packer.carton({"MUG": 2}, scanned={"MUG": 2}, extra_reports=(held("rfid_unknown_tag"),))
    assert len(learned.store.samples(Subject.SKU, "MUG")) == 1
