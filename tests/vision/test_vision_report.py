"""The vision ChannelReport builder: properties over random cartons, and the policy's reading."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from station.domain import Barcode, Catalog, CatalogItem, ItemKind
from station.verification import (
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    VerificationPolicy,
)
from station.weight_check import PackingMaterial
from vision.barcodes import CodeRead
from vision.observe import InsertionObservation, TakeOut
from vision.report import build_vision_report, put_back_guard

SKUS = ["MUG", "TEA", "SOCK-M", "SOCK-L", "CARD", "EAR"]
GTIN = {"MUG": "4006381333931", "TEA": "4012345000016"}
CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", barcodes=(Barcode(code=GTIN["MUG"]),)),
        CatalogItem(sku="TEA", name="Tea", barcodes=(Barcode(code=GTIN["TEA"]),)),
        CatalogItem(sku="SOCK-M", name="Socks M"),
        CatalogItem(sku="SOCK-L", name="Socks L"),
        CatalogItem(sku="CARD", name="Gift card", kind=ItemKind.INSERT),
        CatalogItem(sku="EAR", name="Earrings", vision_visible=False),
    ]
)
GROUPS = {"socks": ("SOCK-M", "SOCK-L")}
VISIBLE = {"MUG", "TEA", "SOCK-M", "SOCK-L"}


def code(sku: str, serial: str | None = None) -> CodeRead:
    g = GTIN[sku].zfill(14)
    return CodeRead("EAN13", GTIN[sku], "]E0", GTIN[sku].encode(), (0, 0), (), g, serial)


def obs(i: int, new: int | None, codes: tuple[CodeRead, ...] = (), labels=None):
    return InsertionObservation(i, new, new, labels or {}, codes, "" if new is not None else "hand")


def sequence(counts: list[int]) -> list[InsertionObservation]:
    return [obs(i, n) for i, n in enumerate(counts)]


expected_st = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 4), min_size=1, max_size=5)


@given(expected=expected_st, split=st.lists(st.integers(0, 3), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_discrepancy_follows_the_count(expected: dict[str, int], split: list[int]) -> None:
    report = build_vision_report(sequence(split), expected, CATALOG, lookalike_groups=GROUPS)
    visible = sum(n for s, n in expected.items() if s in VISIBLE)
    total = sum(split)
    assert report.channel == "vision" and report.state is ChannelState.OK
    assert report.measurements["items_counted"] == total
    want = (
        Discrepancy.DEFICIT
        if total < visible
        else Discrepancy.SURPLUS
        if total > visible
        else Discrepancy.NONE
    )
    assert report.discrepancy is want
    # Every expected SKU gets exactly one finding; invisible ones are not applicable.
    assert sorted(f.sku for f in report.findings) == sorted(expected)
    for f in report.findings:
        if f.sku not in VISIBLE:
            assert f.status is FindingStatus.NOT_APPLICABLE and f.observed is None
        # Without codes or classes vision never claims an identity.
        assert f.status is not FindingStatus.CONFIRMED


@given(
    expected=expected_st,
    split=st.lists(st.integers(0, 3), min_size=1, max_size=6),
    bad=st.integers(0, 5),
)
@settings(max_examples=100, deadline=None)
def test_an_unreadable_insertion_is_never_a_count(expected, split, bad) -> None:
    observations = sequence(split)
    i = bad % len(observations)
    observations[i] = obs(i, None)
    report = build_vision_report(observations, expected, CATALOG)
    assert report.discrepancy is Discrepancy.NONE
    assert all(f.status is FindingStatus.NOT_APPLICABLE for f in report.findings)
    assert all(f.observed is None for f in report.findings)
    assert any(r.code == "vision_not_applicable" for r in report.reasons)
    assert "items_counted" not in report.measurements
    # A station that requires vision does not pass a carton vision could not count.
    assert report.state is ChannelState.UNSURE
    required = VerificationPolicy(required_channels=frozenset({"vision"}))
    assert required.decide(expected, [report]).outcome is Outcome.REVIEW


def test_a_code_read_before_an_item_went_out_again_names_nothing_extra() -> None:
    """The packer put a tea in with the mug (both codes read), then took the tea out and the
    close came before it went back: the count is not applicable and the tea's code proves
    nothing, nor does a second mug's code read twice: the optional camera blocks nothing."""
    expected = {"MUG": 1}
    out = InsertionObservation(2, None, None, {}, (), "an item was taken out", framed=False)
    optional = VerificationPolicy(required_channels=frozenset())
    for second in (code("TEA"), code("MUG")):
        frames = [obs(0, 1, (code("MUG"),)), obs(1, 1, (code("MUG"), second)), out]
        report = build_vision_report(frames, expected, CATALOG)
        assert report.state is ChannelState.UNSURE
        assert all(f.status is not FindingStatus.EXTRA for f in report.findings)
        assert optional.decide(expected, [report]).outcome is not Outcome.BLOCK


def test_a_code_read_in_a_frame_a_hand_hid_proves_nothing() -> None:
    """The packer holds the mug over the carton, its code up, while the tea goes in: the frame is
    unreadable (carried over) and the code may be on a unit that never goes in."""
    expected = {"MUG": 1, "TEA": 1}
    hidden = replace(obs(0, None, (code("MUG"),)), carried_over=True)
    report = build_vision_report([hidden, obs(1, 1)], expected, CATALOG)
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.DEFICIT
    mug = report.finding_for("MUG")
    assert mug is None or mug.status is not FindingStatus.CONFIRMED


def test_a_carton_vision_cannot_count_still_names_a_code_it_read_that_was_not_ordered() -> None:
    """An insertion it could not read leaves the count not applicable, but the tea's code read in
    a readable frame of a mug-only order is still an extra unit: where vision is optional (or an
    excused backup) that blocks, where it is required the carton goes to REVIEW as before."""
    expected = {"MUG": 1}
    report = build_vision_report([obs(0, None), obs(1, 1, (code("TEA"),))], expected, CATALOG)
    assert report.state is ChannelState.UNSURE
    tea, mug = report.finding_for("TEA"), report.finding_for("MUG")
    assert tea is not None and tea.status is FindingStatus.EXTRA and tea.observed == 1
    assert mug is not None and mug.status is FindingStatus.NOT_APPLICABLE
    optional = VerificationPolicy(required_channels=frozenset())
    verdict = optional.decide(expected, [report])
    assert verdict.outcome is Outcome.BLOCK and [d.sku for d in verdict.extra] == ["TEA"]
    required = VerificationPolicy(required_channels=frozenset({"vision"}))
    assert required.decide(expected, [report]).outcome is Outcome.REVIEW
    assert any(r.code == "sku_extra" and r.sku == "TEA" for r in verdict.reasons)


@given(
    expected=expected_st,
    split=st.lists(st.integers(0, 3), min_size=2, max_size=6),
    bad=st.integers(0, 5),
)
@settings(max_examples=100, deadline=None)
def test_an_unreadable_insertion_is_counted_by_the_next_readable_frame(expected, split, bad):
    """A hand kept insertion i from a readable frame: the next readable frame sees its items as
    new (it is compared with the last readable frame), so the carton's count is the same as if
    every frame had been read. Unreadable frames up to the last leave the count not applicable,
    unless what was counted already reaches the expected units (hidden frames only add)."""
    i = bad % (len(split) - 1)
    read = build_vision_report(sequence(split), expected, CATALOG)
    merged = sequence(split)
    merged[i] = replace(obs(i, None), carried_over=True)
    merged[i + 1] = obs(i + 1, split[i] + split[i + 1])
    report = build_vision_report(merged, expected, CATALOG)
    assert report.state is ChannelState.OK
    assert report.discrepancy is read.discrepancy
    assert report.measurements["items_counted"] == read.measurements["items_counted"]
    assert report.measurements["carried_over_frames"] == 1
    merged[-1] = replace(obs(len(split) - 1, None), carried_over=True)
    hidden_last = build_vision_report(merged, expected, CATALOG)
    so_far = sum(o.new_items or 0 for o in merged)
    if so_far < read.measurements["expected_visible"]:  # the shortfall may be in the hidden frame
        assert hidden_last.state is ChannelState.UNSURE
    else:
        assert hidden_last.state is ChannelState.OK
        assert hidden_last.discrepancy is not Discrepancy.DEFICIT
        assert hidden_last.measurements["hidden_last_frames"] >= 1


@given(expected=expected_st, split=st.lists(st.integers(0, 3), min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_policy_blocks_a_short_count_and_never_passes_on_vision_alone(expected, split) -> None:
    report = build_vision_report(sequence(split), expected, CATALOG, lookalike_groups=GROUPS)
    verdict = VerificationPolicy(required_channels=frozenset({"vision"})).decide(expected, [report])
    visible = sum(n for s, n in expected.items() if s in VISIBLE)
    if sum(split) != visible:
        assert verdict.outcome is Outcome.BLOCK
    else:
        assert verdict.outcome is Outcome.REVIEW  # count agrees, identities unproven


def test_one_unproven_sku_missing_is_named() -> None:
    expected = {"MUG": 1, "SOCK-M": 2}
    report = build_vision_report([obs(0, 1, (code("MUG"),)), obs(1, 1)], expected, CATALOG)
    assert report.discrepancy is Discrepancy.DEFICIT
    sock = report.finding_for("SOCK-M")
    assert sock is not None and sock.status is FindingStatus.MISSING and sock.observed == 1
    mug = report.finding_for("MUG")
    assert mug is not None and mug.status is FindingStatus.CONFIRMED
    verdict = VerificationPolicy(required_channels=frozenset({"vision"})).decide(expected, [report])
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.missing] == [("SOCK-M", 1)]


def test_codes_prove_every_unit_and_the_carton_passes() -> None:
    expected = {"MUG": 1, "TEA": 2}
    observations = [
        obs(0, 1, (code("MUG"),)),
        obs(1, 1, (code("MUG"), code("TEA", "S1"))),
        obs(2, 1, (code("TEA", "S2"),)),
    ]
    report = build_vision_report(observations, expected, CATALOG)
    assert {f.sku: f.status for f in report.findings} == {
        "MUG": FindingStatus.CONFIRMED,
        "TEA": FindingStatus.CONFIRMED,
    }
    verdict = VerificationPolicy(required_channels=frozenset({"vision"})).decide(expected, [report])
    assert verdict.outcome is Outcome.PASS


def test_a_count_short_of_the_units_its_codes_identified_is_looked_at_not_passed() -> None:
    # Three units identified by their serials, two counted: a detection missed under another
    # unit, or codes proving too much (a unit swapped at a put-back). A deficit would name
    # nothing missing (a BLOCK without a missing line), a pass would trust the codes blindly.
    expected = {"MUG": 1, "TEA": 2}
    observations = [
        obs(0, 1, (code("MUG"),)),
        obs(1, 1, (code("TEA", "S1"), code("TEA", "S2"))),
    ]
    report = build_vision_report(observations, expected, CATALOG)
    assert report.discrepancy is Discrepancy.NONE
    assert report.measurements["count_below_identified"] == 1
    verdict = VerificationPolicy(required_channels=frozenset({"vision"})).decide(expected, [report])
    assert verdict.outcome is Outcome.REVIEW
    assert [r.code for r in verdict.reasons] == ["vision_count_below_identified"]
    # One TEA unidentified: the deficit stands and names it.
    observations[1] = obs(1, 1, (code("TEA", "S1"),))
    report = build_vision_report(observations, expected, CATALOG)
    assert report.discrepancy is Discrepancy.DEFICIT
    tea = report.finding_for("TEA")
    assert tea is not None and tea.status is FindingStatus.MISSING


def test_same_serial_seen_twice_is_one_unit() -> None:
    expected = {"TEA": 2}
    observations = [obs(0, 1, (code("TEA", "S1"),)), obs(1, 1, (code("TEA", "S1"),))]
    report = build_vision_report(observations, expected, CATALOG)
    tea = report.finding_for("TEA")
    assert tea is not None and tea.status is FindingStatus.UNCERTAIN  # 2 items, 1 proven


def test_a_code_for_an_unordered_sku_is_extra() -> None:
    report = build_vision_report([obs(0, 2, (code("TEA"),))], {"MUG": 1}, CATALOG)
    tea = report.finding_for("TEA")
    assert tea is not None and tea.status is FindingStatus.EXTRA and tea.observed == 1


def test_a_lookalike_class_proves_the_group_not_the_sku() -> None:
    expected = {"SOCK-M": 1, "SOCK-L": 1, "MUG": 1}
    observations = [obs(0, 1, labels={"SOCK-M": 1}), obs(1, 1, labels={"socks": 1})]
    report = build_vision_report(observations, expected, CATALOG, lookalike_groups=GROUPS)
    # 2 counted, 3 expected; the two socks are covered by their group class: the mug is short.
    assert report.discrepancy is Discrepancy.DEFICIT
    mug = report.finding_for("MUG")
    assert mug is not None and mug.status is FindingStatus.MISSING
    assert report.finding_for("SOCK-M").status is not FindingStatus.CONFIRMED  # type: ignore[union-attr]


def test_camera_down_and_no_frames() -> None:
    down = build_vision_report([], {"MUG": 1}, CATALOG, camera_up=False)
    assert down.state is ChannelState.DOWN
    stale = build_vision_report([], {"MUG": 1}, CATALOG)
    assert stale.state is ChannelState.STALE


# -- the put-back guard built from the order ---------------------------------------------------


def weighed(**weights: tuple[float, float]) -> Catalog:
    """CATALOG with unit weights (mean, spread) for the SKUs named (dashes as underscores)."""
    items = []
    for item in CATALOG.items.values():
        w = weights.get(item.sku.replace("-", "_"))
        update = {} if w is None else {"unit_weight_g": w[0], "weight_spread_g": w[1]}
        items.append(item.model_copy(update=update))
    return Catalog.from_lists(items)


def one_gram(_load_g: float) -> float:
    return 1.0


def test_the_put_back_guard_takes_the_lightest_unit_the_camera_counts() -> None:
    """At its lightest (mean minus four spreads); the card (an insert) and the earrings (not
    visible) are not counted, so they cannot inflate the count, and lines of 0 are no units."""
    catalog = weighed(MUG=(400, 5), TEA=(250, 2), SOCK_M=(60, 3), CARD=(5, 1), EAR=(8, 0.5))
    guard = put_back_guard(
        {"MUG": 1, "TEA": 2, "SOCK-M": 0, "CARD": 1, "EAR": 2}, catalog, one_gram
    )
    assert (guard.lightest_sku, guard.lightest_counted_g) == ("TEA", 250 - 4 * 2)


def test_the_put_back_guard_knows_the_heaviest_piece_the_camera_does_not_count() -> None:
    """Paperwork and fill (mean plus four spreads), the order's card (an insert) and earrings
    (not visible): all of it could go back in with an item in place of a unit, unseen."""
    catalog = weighed(MUG=(400, 5), TEA=(250, 2), CARD=(5, 1), EAR=(8, 0.5))
    materials = (PackingMaterial("paperwork", 12, 3), PackingMaterial("fill", 15, 6))
    guard = put_back_guard({"MUG": 1, "CARD": 1, "EAR": 1}, catalog, one_gram, materials)
    assert guard.uncounted_g == (12 + 4 * 3) + (15 + 4 * 6) + (5 + 4 * 1) + (8 + 4 * 0.5)
    two_cards = put_back_guard({"MUG": 1, "CARD": 2}, catalog, one_gram)
    assert two_cards.uncounted_g == 2 * (5 + 4 * 1)  # every unit could go back together
    unweighed = put_back_guard({"MUG": 1, "EAR": 1}, weighed(MUG=(400, 5)), one_gram, materials)
    assert unweighed.uncounted_g == math.inf  # earrings of unknown weight: anything
    assert put_back_guard({"MUG": 1}, catalog, one_gram).uncounted_g == 0.0  # none at all
    hid = TakeOut(1000, 600, level_back_g=1000)
    assert guard.refuses(hid, hid=0) == "" and guard.refuses(hid, hid=1) == ""  # a 380 g mug
    light = weighed(MUG=(30, 1), CARD=(5, 1), EAR=(8, 0.5))
    light_guard = put_back_guard({"MUG": 1, "CARD": 1}, light, one_gram, materials)
    assert light_guard.refuses(hid, hid=0) == ""
    assert "packing material" in light_guard.refuses(hid, hid=1)


def test_a_counted_unit_of_unknown_weight_leaves_the_guard_nothing_to_go_on() -> None:
    guard = put_back_guard({"MUG": 1, "TEA": 1}, weighed(TEA=(250, 2)), one_gram)
    assert guard.lightest_counted_g is None and guard.lightest_sku == "MUG"
    assert "MUG, of unknown weight" in guard.refuses(TakeOut(1000, 750))
    # A SKU the catalog does not know: counted or not, of unknown weight; no step vouches.
    unknown = put_back_guard({"TEA": 1, "NEW-SKU": 1}, weighed(TEA=(250, 2)), one_gram)
    assert unknown.lightest_counted_g is None and unknown.lightest_sku == "NEW-SKU"
    assert not unknown.counted_unit_in(1000, 2000)


def test_a_variable_weight_unit_counts_at_its_stated_minimum_never_its_nominal_weight() -> None:
    """Sold by weight: the nominal weight and spread say nothing about the lightest pack, so
    only a stated minimum lets a put-back stand."""
    base = weighed(MUG=(400, 5), TEA=(500, 60))

    def cheese(**update: object) -> Catalog:
        items = [
            i.model_copy(update={"variable_weight": True, **update}) if i.sku == "TEA" else i
            for i in base.items.values()
        ]
        return Catalog.from_lists(items)

    order = {"MUG": 1, "TEA": 1}
    unknown = put_back_guard(order, cheese(), one_gram)
    assert (unknown.lightest_sku, unknown.lightest_counted_g) == ("TEA", None)
    stated = put_back_guard(order, cheese(min_unit_weight_g=150.0), one_gram)
    assert (stated.lightest_sku, stated.lightest_counted_g) == ("TEA", 150.0)
    assert stated.refuses(TakeOut(1000, 750)) == ""
