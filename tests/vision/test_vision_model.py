"""The committed model on rendered insertions (never retrained here).

Cartons are packed one unit per insertion from item designs the model never saw (holdout family)
at 640x480. The model does not meet the issue's accuracy targets yet (see models/item_counter.md),
so per-carton assertions on single seeds would only test which seeds we picked. These tests run a
fixed batch of 20 cartons and assert the behaviour in aggregate, with floors a little under what
the committed model measured (a regression guard, not the target). Measured with
item_counter-2026-11-26-s7-w24-n4000 (sha256 3a5c9d29) and one-to-one pairing of insertion
frames: complete cartons counted exactly 17/20, short ones 19/20, short reads fewer than its
complete twin 19/20, short carton BLOCKed 20/20 (never PASS), complete carton not blocked 17/20
(a false block rate of 15 %: see docs/vision.md), hand -> NA 20/20.

* a complete carton's accumulated count is exact, and one light item missing reads one short;
* the vision report BLOCKs the short carton where the weight channel cannot tell (8 g item);
* a hand over the carton is "not applicable", never a count.
"""

from __future__ import annotations

import json

import pytest

from simulators.camera import InsertionSequence
from station.domain import Catalog, CatalogItem
from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)
from vision.config import DEFAULT_MODEL, CounterDetectorConfig
from vision.detectors import CounterDetector
from vision.evaluate import evaluate_put_backs
from vision.observe import InsertionAccumulator, Pipeline
from vision.report import build_vision_report, counted

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="model not committed")

ORDER = {"BOOK": 1, "MUG": 1, "EAR": 1, "SOCKS": 2}  # EAR weighs 8 g: under the scale's tolerance
CATALOG = Catalog.from_lists([CatalogItem(sku=s, name=s) for s in ("BOOK", "MUG", "EAR", "SOCKS")])
POLICY = VerificationPolicy(required_channels=frozenset({"weight", "vision"}))
SEEDS = range(100, 120)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(CounterDetector(CounterDetectorConfig(type="counter", threads=1)))


def weight_report() -> ChannelReport:
    """The weight channel on such a carton: all confirmed except the 8 g item it cannot see."""
    findings = [
        SkuFinding(s, FindingStatus.CONFIRMED, n, n, 0.99) for s, n in ORDER.items() if s != "EAR"
    ]
    findings.append(SkuFinding("EAR", FindingStatus.UNCERTAIN, 1, None, 0.3, "within tolerance"))
    return ChannelReport("weight", ChannelState.OK, tuple(findings))


def pack(
    pipeline: Pipeline, seed: int, skip: str | None = None, hand_at: int | None = None
) -> InsertionAccumulator:
    seq = InsertionSequence(seed, width=640, height=480)
    acc = InsertionAccumulator()
    units = [s for s, n in ORDER.items() for _ in range(n)]
    if skip:
        units.remove(skip)
    for i, sku in enumerate(units):
        assert seq.insert(sku)
        frame, _ = seq.frame(hand=hand_at == i)
        acc.add(pipeline.observe(frame))
    return acc


@pytest.fixture(scope="module")
def cartons(pipeline: Pipeline) -> dict[str, list[InsertionAccumulator]]:
    return {
        "complete": [pack(pipeline, s) for s in SEEDS],
        "short": [pack(pipeline, s, skip="EAR") for s in SEEDS],
        "hand": [pack(pipeline, s, hand_at=2) for s in SEEDS],
        "hand at the end": [pack(pipeline, s, hand_at=4) for s in SEEDS],
    }


def rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def test_complete_and_short_cartons_count_differently(cartons) -> None:
    complete = [a.total() for a in cartons["complete"]]
    short = [a.total() for a in cartons["short"]]
    assert rate([t == 5 for t in complete]) >= 0.75, complete
    assert rate([t == 4 for t in short]) >= 0.85, short
    # Per carton twin (same seed), the short one reads fewer items.
    fewer = [
        s is not None and c is not None and s < c for s, c in zip(short, complete, strict=True)
    ]
    assert rate(fewer) >= 0.85, list(zip(short, complete, strict=True))


def test_vision_blocks_a_missing_light_item_the_weight_cannot_see(cartons) -> None:
    outcomes = []
    for acc in cartons["short"]:
        report = build_vision_report(acc.observations, ORDER, CATALOG)
        verdict = POLICY.decide(ORDER, [weight_report(), report])
        outcomes.append(verdict.outcome)
        if report.discrepancy is Discrepancy.DEFICIT:
            assert verdict.outcome is Outcome.BLOCK
            assert any(r.code == "vision_count_deficit" for r in verdict.reasons)
    assert rate([o is Outcome.BLOCK for o in outcomes]) >= 0.9, outcomes
    # A short carton never PASSes: at worst vision's count agrees and the SKU stays unverified.
    assert Outcome.PASS not in outcomes


def test_a_complete_carton_is_not_blocked_by_vision(cartons) -> None:
    outcomes = []
    for acc in cartons["complete"]:
        report = build_vision_report(acc.observations, ORDER, CATALOG)
        outcomes.append(POLICY.decide(ORDER, [weight_report(), report]).outcome)
    # REVIEW, not PASS: vision counts but proves no identity for the 8 g item.
    assert rate([o is Outcome.REVIEW for o in outcomes]) >= 0.75, outcomes


def test_a_hand_over_the_carton_is_not_applicable_and_the_next_frame_counts_it(cartons) -> None:
    na = [a.observations[2].new_items is None for a in cartons["hand"]]
    assert rate(na) >= 0.9, na
    hidden = [a for a in cartons["hand"] if a.observations[2].new_items is None]
    # The next frame is compared with the last readable one: what the hand hid is new in it.
    totals = [a.total() for a in hidden]
    assert rate([t == 5 for t in totals]) >= 0.75, totals
    for acc in hidden:
        report = build_vision_report(acc.observations, ORDER, CATALOG)
        assert report.state is ChannelState.OK
        assert report.measurements["carried_over_frames"] == 1


def test_a_hand_over_the_last_insertion_leaves_the_count_not_applicable(cartons) -> None:
    """The last unit's frame hidden: the count before it falls short of the order, and the
    shortfall may be in the hidden frame. (Only an earlier over-count reaches the order: then
    the count stands, since the hidden frame could only add.)"""
    hidden = [a for a in cartons["hand at the end"] if a.observations[-1].new_items is None]
    assert len(hidden) >= 0.9 * len(cartons["hand at the end"])
    short = 0
    for acc in hidden:
        assert acc.total() is None
        report = build_vision_report(acc.observations, ORDER, CATALOG)
        if counted(acc.observations) >= report.measurements["expected_visible"]:
            assert report.state is ChannelState.OK
            continue
        short += 1
        assert report.state is ChannelState.UNSURE and report.discrepancy is Discrepancy.NONE
        assert {f.status for f in report.findings} == {FindingStatus.NOT_APPLICABLE}
    assert short >= 0.8 * len(hidden)


def test_model_card_matches_the_committed_file(pipeline: Pipeline) -> None:
    card = json.loads(DEFAULT_MODEL.with_name("item_counter.card.json").read_text())
    info = pipeline.detector.info
    assert card["sha256"] == info.sha256
    assert card["version"] == info.version
    assert DEFAULT_MODEL.stat().st_size < 5_000_000
    assert "evaluation" in card


def test_a_unit_put_back_over_others_stands_and_one_lifted_out_with_it_rarely(
    pipeline: Pipeline,
) -> None:
    """vision.evaluate's put-back cartons, a few of them, with the shipped model: a unit set
    down again (hiding others or not) mostly adds nothing; with another unit lifted out with it
    the frame mostly says the count is not applicable (where it does not, the weights decide:
    PutBackGuard). The card has the full figures."""
    cases = evaluate_put_backs(pipeline.detector, 60)["cases"]
    assert sum(c["put_backs"] for c in cases.values()) == 60
    assert cases["fair_hid_0"]["stood_rate"] >= 0.85
    assert cases["fair_hid_1+"]["stood"] >= cases["fair_hid_1+"]["put_backs"] / 2
    assert cases["lifted_with"]["stood_rate"] <= 0.3
