"""Per-insertion weight: steps explained by the units that went in."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.carton_policy import NEVER_ALONE
from station.domain import BoxType, Catalog, CatalogItem
from station.insertion_check import (
    SCANNED_NOT_PLACED,
    SCANNED_WEIGHT_MISMATCH,
    InsertionMemo,
    WeightStep,
    evaluate_insertions,
)
from station.scan_check import UnitScan
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)
from station.weight_check import PackingMaterial

CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=412, weight_spread_g=4),
        CatalogItem(sku="EAR", name="Earrings", unit_weight_g=8, weight_spread_g=0.3),
        CatalogItem(sku="SOCKS", name="Socks", unit_weight_g=62, weight_spread_g=1.5),
        CatalogItem(sku="TEA", name="Tea", unit_weight_g=268, weight_spread_g=3),
        CatalogItem(sku="CABLE", name="USB cable", unit_weight_g=38, weight_spread_g=0.5),
    ],
    [BoxType(code="BOX", name="Box", tare_g=180, tare_spread_g=4)],
)
BOX = CATALOG.boxes["BOX"]
PAPER = (PackingMaterial("paperwork", 12, 1.5),)
EXPECTED = {"MUG": 1, "EAR": 1, "SOCKS": 2, "TEA": 1, "CABLE": 1}
MPE_G = 0.5  # a 0.5 g division counter scale


def steps_for(pieces: list[float], rng: random.Random) -> list[WeightStep]:
    level, steps = 0.0, []
    for t, grams in enumerate(pieces):
        after = level + grams + rng.uniform(-MPE_G, MPE_G)
        steps.append(WeightStep(level, after, float(t)))
        level = after
    return steps


def check(steps, expected=EXPECTED, started_from=0.0, scans=(), memo=None, catalog=CATALOG):
    return evaluate_insertions(
        steps,
        started_from,
        expected,
        catalog,
        BOX,
        PAPER,
        lambda g: MPE_G,
        0.9,
        2.0,
        0.01,
        scans,
        memo,
    )


def report(steps, expected=EXPECTED, started_from=0.0, scans=()):
    return check(steps, expected, started_from, scans).report


def unit(sku: str, rng: random.Random) -> float:
    """One unit's weight: the catalog's spread, within 3 of them as 99.7 % of units are
    (hypothesis's random draws its Gaussians at the extremes: 1e250 is no unit of anything)."""
    return units_together([sku], rng)


def units_together(skus: list[str], rng: random.Random) -> float:
    """What units put in at once weigh together: within 3 of their joint spread, as 99.7 % of
    such steps are (two units each at its own 3-spread extreme are a 4-spread step: 8 g
    earrings in with a 268 +- 3 g tea at both extremes weigh as the tea alone, and no scale
    can say the earrings went in)."""
    items = [CATALOG.items[sku] for sku in skus]
    spread = sum(item.weight_spread_g**2 for item in items) ** 0.5
    mean = sum(item.unit_weight_g for item in items)
    return mean + spread * max(-3.0, min(3.0, rng.gauss(0, 1)))


def test_a_missing_light_unit_the_total_cannot_see_is_named() -> None:
    rng = random.Random(1)
    units = ["MUG", "SOCKS", "EAR", "SOCKS", "TEA"]  # the 38 g cable is left out
    result = report(steps_for([180 + 12, *(unit(sku, rng) for sku in units)], rng))
    assert result.state is ChannelState.OK
    cable = result.finding_for("CABLE")
    assert cable.status is FindingStatus.MISSING and cable.observed == 0
    assert cable.confidence >= 0.9  # the default min_confidence: acted on
    assert result.finding_for("MUG").status is FindingStatus.CONFIRMED


def test_two_units_at_once_and_a_unit_taken_out_again_are_followed() -> None:
    rng = random.Random(2)
    socks = unit("SOCKS", rng)
    pieces = [192, unit("MUG", rng) + unit("CABLE", rng), socks, -socks, socks]
    pieces += [unit(sku, rng) for sku in ("SOCKS", "TEA", "EAR")]
    result = report(steps_for(pieces, rng))
    assert result.state is ChannelState.OK, result.reasons
    assert {f.status for f in result.findings} == {FindingStatus.CONFIRMED}


def test_a_light_unit_that_may_hide_in_a_heavy_units_spread_is_not_called_missing() -> None:
    """Earrings (8 g) put in with the mug (412 +- 4 g) are as likely as no earrings at all: the
    channel says so with its confidence and the policy does not act on it."""
    rng = random.Random(5)
    units = ["SOCKS", "SOCKS", "TEA", "CABLE"]
    pieces = [192, unit("MUG", rng) + unit("EAR", rng), *(unit(s, rng) for s in units)]
    ear = report(steps_for(pieces, rng)).finding_for("EAR")
    assert not (ear.status is FindingStatus.MISSING and ear.confidence >= 0.9)


def test_it_fails_safe_when_it_did_not_watch_or_cannot_explain() -> None:
    rng = random.Random(3)
    assert report([], started_from=0.0).state is ChannelState.UNSURE
    assert report(steps_for([192], rng), started_from=400.0).state is ChannelState.UNSURE
    stray = report(steps_for([192, 135.0], rng))  # a unit of another order
    assert stray.state is ChannelState.UNSURE
    assert "match nothing expected" in stray.reasons[0].message


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_a_complete_carton_is_never_called_short(rng) -> None:
    """Units in any order, one at a time, with unit spread and scale error: whatever it says,
    it never confidently names a unit missing or extra in a complete carton."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n)]
    rng.shuffle(units)
    pieces = [192.0, *(unit(sku, rng) for sku in units)]
    result = report(steps_for(pieces, rng))
    wrong = [
        f
        for f in result.findings
        if f.status in (FindingStatus.MISSING, FindingStatus.EXTRA) and f.confidence >= 0.9
    ]
    assert not wrong


@pytest.mark.parametrize("scanned", [False, True], ids=["no scans", "every unit scanned"])
def test_a_hundred_unit_carton_is_explained_quickly(scanned: bool) -> None:
    skus = {f"SKU-{i}": 1 + i % 3 for i in range(50)}
    catalog = Catalog.from_lists(
        [
            CatalogItem(sku=s, name=s, unit_weight_g=20 + 37 * i, weight_spread_g=1)
            for i, s in enumerate(skus)
        ],
        [BOX],
    )
    rng = random.Random(4)
    units = [s for s, n in skus.items() for _ in range(n)]
    rng.shuffle(units)
    steps = steps_for([180.0, *(catalog.items[s].unit_weight_g for s in units)], rng)
    scans = [UnitScan(s, 1, t + 0.5) for t, s in enumerate(units)] if scanned else []
    started = time.perf_counter()
    result = evaluate_insertions(
        steps, 0.0, skus, catalog, BOX, (), lambda g: MPE_G, 0.9, 2.0, 0.01, scans
    ).report
    elapsed = time.perf_counter() - started
    assert result.state is ChannelState.OK, result.reasons
    assert result.measurements["steps_paired_with_scans"] == (len(units) if scanned else 0)
    assert elapsed < 2.0  # generous: measured in benchmarks, this only catches a blow-up


# -- steps paired with the unit scans before them ------------------------------------------------


def packed(sequence: list[str | float], rng: random.Random, lead: float = 0.5):
    """Steps and unit scans of a carton packed in `sequence`: a SKU is one unit scanned `lead`
    seconds before its step (negative: after it), grams are a step nothing was scanned for."""
    pieces, scans = [], []
    for t, entry in enumerate(sequence):
        if isinstance(entry, str):
            pieces.append(unit(entry, rng))
            scans.append(UnitScan(entry, 1, t - lead))
        else:
            pieces.append(entry)
    return steps_for(pieces, rng), scans


def paired_report(sequence, rng, expected=EXPECTED, lead=0.5, extra_scans=()):
    steps, scans = packed(sequence, rng, lead)
    return check(steps, expected, scans=[*scans, *extra_scans])


def acted_on(result, status: FindingStatus) -> set[str]:
    return {f.sku for f in result.findings if f.status is status and f.confidence >= 0.9}


def test_a_look_alike_put_in_for_the_scanned_unit_is_held_for_review() -> None:
    """The packer scanned the tea (268 +- 3 g) but put in its look-alike 6 % heavier: the step
    contradicts the scan, so the tea is not confirmed and the carton is held for a person
    (a look-alike, or a catalog weight that is wrong: one step cannot tell which)."""
    rng = random.Random(7)
    units = ["MUG", "SOCKS", "EAR", "SOCKS", "CABLE"]
    steps, scans = packed([192.0, *units, 268 * 1.06], rng)
    scans.append(UnitScan("TEA", 1, len(units) + 0.5))  # scanned just before the last step
    result = check(steps, scans=scans).report
    assert result.state is ChannelState.OK
    tea = result.finding_for("TEA")
    assert tea.status is FindingStatus.UNCERTAIN and tea.confidence >= 0.9, tea
    assert [r.code for r in result.review] == [SCANNED_WEIGHT_MISMATCH]
    assert "284 g" in result.review[0].message
    policy = VerificationPolicy(required_channels=frozenset(), corroborate=NEVER_ALONE)
    scan = ChannelReport(
        "scan",
        ChannelState.OK,
        tuple(SkuFinding(sku, FindingStatus.CONFIRMED, n, n, 1.0) for sku, n in EXPECTED.items()),
    )
    verdict = policy.decide(EXPECTED, [result, scan])  # every unit scanned: the scans vouch
    assert verdict.outcome is Outcome.REVIEW
    assert SCANNED_WEIGHT_MISMATCH in [r.code for r in verdict.reasons]


def test_a_scanned_unit_no_step_followed_is_named_missing() -> None:
    """The cable was scanned, then set down beside the box: no step ever weighed 38 g."""
    rng = random.Random(8)
    result = paired_report(
        [192.0, "MUG", "SOCKS", "EAR", "SOCKS", "TEA"],
        rng,
        extra_scans=[UnitScan("CABLE", 1, 6.5)],
    ).report
    cable = result.finding_for("CABLE")
    assert cable.status is FindingStatus.MISSING and cable.confidence >= 0.9
    assert SCANNED_NOT_PLACED in {r.code for r in result.reasons}


def test_scanned_earrings_that_may_hide_in_the_mugs_spread_are_not_called_missing() -> None:
    """Earrings scanned, then in with the mug: no step of their own, but 8 g hides in the mug's
    4 g spread, so their absence is not asserted (the weight cannot tell)."""
    rng = random.Random(9)
    steps, scans = packed([192.0, "SOCKS", "SOCKS", "TEA", "CABLE"], rng)
    mug_and_earrings = unit("MUG", rng) + unit("EAR", rng)
    level = steps[-1].to_g
    steps.append(WeightStep(level, level + mug_and_earrings, 5.0))
    scans += [UnitScan("MUG", 1, 4.5), UnitScan("EAR", 1, 4.6)]
    result = check(steps, scans=scans).report
    assert "EAR" not in acted_on(result, FindingStatus.MISSING)


def test_units_dropped_faster_than_the_scale_settles_are_read_as_one_step() -> None:
    """A fast packer scans the box, then three cables and the socks, and drops them all in
    before the scale settles on anything: one step of box + paperwork + units. The scans say
    what was in hand, so the step is read as all of it, not as one or two of the units with
    the rest "scanned, then not put in"; the tea scanned afterwards and never put in is named."""
    rng = random.Random(12)
    expected = {"CABLE": 3, "SOCKS": 1, "TEA": 1}
    dropped = 192.0 + sum(unit(sku, rng) for sku in ["CABLE", "CABLE", "CABLE", "SOCKS"])
    steps = steps_for([dropped], rng)
    scans = [UnitScan(sku, 1, -0.4 + 0.1 * i) for i, sku in enumerate(["CABLE"] * 3 + ["SOCKS"])]
    whole = check(steps, expected, scans=scans).report
    assert SCANNED_NOT_PLACED not in {r.code for r in whole.reasons}
    assert "CABLE" not in acted_on(whole, FindingStatus.MISSING)
    short = check(steps, expected, scans=[*scans, UnitScan("TEA", 1, 0.5)]).report
    assert acted_on(short, FindingStatus.MISSING) == {"TEA"}
    # A later fast drop of three units (no box in it) is read the same way.
    level = steps[-1].to_g
    later = WeightStep(level, level + sum(unit(s, rng) for s in ["MUG", "SOCKS", "SOCKS"]), 1.0)
    more = {**expected, "MUG": 1, "SOCKS": 3}
    three = [UnitScan(sku, 1, 0.6 + 0.1 * i) for i, sku in enumerate(["MUG", "SOCKS", "SOCKS"])]
    both = check([*steps, later], more, scans=[*scans, *three, UnitScan("TEA", 1, 0.5)]).report
    assert acted_on(both, FindingStatus.MISSING) == {"TEA"}
    assert {r.sku for r in both.reasons if r.code == SCANNED_NOT_PLACED} == {"TEA"}


def test_the_scans_say_which_of_two_same_weight_skus_is_missing() -> None:
    """Two shirt sizes of the same weight, one S and two M ordered, two steps of a shirt: the
    steps alone lean the wrong way (an M missing); with the two M scanned before their steps the
    likeliest reading is the S missing. Not surely enough to act on: a scan is a prior, not a
    certainty (the scan channel, which counts the S unscanned, is what names it)."""
    catalog = Catalog.from_lists(
        [
            CatalogItem(sku="SHIRT-M", name="Shirt M", unit_weight_g=300, weight_spread_g=6),
            CatalogItem(sku="SHIRT-S", name="Shirt S", unit_weight_g=300, weight_spread_g=6),
        ],
        [BOX],
    )
    expected = {"SHIRT-M": 2, "SHIRT-S": 1}
    steps = steps_for([180.0, 301.0, 298.0], random.Random(10))

    def short(scans) -> tuple[str, float]:
        result = evaluate_insertions(
            steps, 0.0, expected, catalog, BOX, (), lambda g: MPE_G, 0.9, 2.0, 0.01, scans
        ).report
        (missing,) = [f for f in result.findings if f.status is FindingStatus.MISSING]
        return missing.sku, missing.confidence

    sku, unscanned = short([])
    assert sku == "SHIRT-M" and unscanned < 0.9
    sku, scanned = short([UnitScan("SHIRT-M", 1, 0.5), UnitScan("SHIRT-M", 1, 1.5)])
    assert sku == "SHIRT-S" and 0.5 < scanned < 0.9


def test_clean_samples_are_single_scanned_units_of_a_whole_carton() -> None:
    """Each step that was one unit scanned just before it is a sample of that unit's weight;
    the box's step (nothing scanned) is not, nor the earrings' (8 g: the 12 g paperwork could
    have made it, and nobody scans paperwork), nor a step of two units, and a carton the
    channel finds short gives none."""
    rng = random.Random(11)
    sequence = [192.0, "MUG", "SOCKS", "EAR", "SOCKS", "TEA", "CABLE"]
    steps, scans = packed(sequence, rng)
    found = check(steps, scans=scans)
    assert found.report.state is ChannelState.OK
    assert [(s.sku, s.at) for s in found.samples] == [
        (sku, float(t)) for t, sku in enumerate(sequence) if sku not in (192.0, "EAR")
    ]
    assert all(s.grams == steps[int(s.at)].delta_g for s in found.samples)
    assert check(steps).samples == ()  # no scans, no samples
    # The mug and the cable in one step, both scanned before it: not one unit's weight.
    level = steps[-1].to_g
    pair = [*steps, WeightStep(level, level + unit("MUG", rng) + unit("CABLE", rng), 7.0)]
    extra = {**EXPECTED, "MUG": 2, "CABLE": 2}
    both = [*scans, UnitScan("MUG", 1, 6.5), UnitScan("CABLE", 1, 6.6)]
    paired = check(pair, extra, scans=both)
    assert paired.report.state is ChannelState.OK
    assert [s.at for s in paired.samples] == [1.0, 2.0, 4.0, 5.0, 6.0]
    steps, scans = packed(sequence[:-1], rng)  # the cable scanned, then set down beside it
    short = check(steps, scans=[*scans, UnitScan("CABLE", 1, 5.5)])
    assert short.report.finding_for("CABLE").status is FindingStatus.MISSING
    assert short.samples == ()


@settings(max_examples=60, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.floats(min_value=-0.4, max_value=0.9),
    st.booleans(),
)
def test_a_complete_carton_packed_as_scanned_is_never_called_short(rng, lead, in_pairs) -> None:
    """Every unit scanned, a little before its step or a little after it, one or two at a time
    (both scanned before the pair goes in): nothing is confidently missing or extra."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n)]
    rng.shuffle(units)
    pieces, scans, t = [192.0], [], 1
    i = 0
    while i < len(units):
        group = units[i : i + 2] if in_pairs and rng.random() < 0.3 else units[i : i + 1]
        pieces.append(units_together(group, rng))
        scans += [UnitScan(sku, 1, t - lead) for sku in group]
        i += len(group)
        t += 1
    result = check(steps_for(pieces, rng), scans=scans).report
    assert not acted_on(result, FindingStatus.MISSING) | acted_on(result, FindingStatus.EXTRA)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(["MUG", "SOCKS", "TEA", "CABLE"]))
def test_a_scanned_unit_never_followed_by_its_step_is_flagged(rng, left_out) -> None:
    """One unit of a SKU heavy enough to make its own step is scanned and set aside: whatever
    the packing order, the channel names it missing with the scan-pairing reason."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n)]
    units.remove(left_out)
    rng.shuffle(units)
    steps, scans = packed([192.0, *units], rng)
    when = rng.uniform(0.2, len(units) + 0.8)  # scanned at any time while packing
    result = check(steps, scans=[*scans, UnitScan(left_out, 1, when)]).report
    finding = result.finding_for(left_out)
    assert finding.status is FindingStatus.MISSING and finding.confidence >= 0.9, finding
    assert {r.code for r in result.reasons} & {SCANNED_NOT_PLACED, SCANNED_WEIGHT_MISMATCH}


@settings(max_examples=80, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.floats(min_value=-1.5, max_value=1.5),
    st.sets(st.sampled_from(sorted(EXPECTED)), max_size=2),
    st.integers(min_value=0, max_value=9),
)
def test_explaining_step_by_step_gives_what_explaining_at_close_gives(
    rng, lead, left_out, corrected_at
) -> None:
    """The daemon explains the steps as they come (with the scans made by then) and keeps the
    beam after each step; at close it only adds the last ones. Whatever the packing (units left
    out, scanned late, taken out and put back, a catalog weight corrected midway), the close's
    report and samples are exactly those of one explanation of every step from scratch."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n) if sku not in left_out]
    rng.shuffle(units)
    sequence: list[str | float] = [192.0, *units]
    if "MUG" in sequence and rng.random() < 0.5:  # the mug taken out to rearrange, put back
        after = rng.randrange(sequence.index("MUG") + 1, len(sequence) + 1)
        mug = CATALOG.items["MUG"].unit_weight_g
        sequence[after:after] = [-mug, mug]
    steps, scans = packed(sequence, rng, lead)
    corrected = Catalog.from_lists(
        [
            item.model_copy(update={"unit_weight_g": 63.0}) if item.sku == "SOCKS" else item
            for item in CATALOG.items.values()
        ],
        [BOX],
    )
    memo = InsertionMemo()
    for done in range(1, len(steps) + 1):
        so_far = [scan for scan in scans if scan.at <= steps[done - 1].at]
        catalog = corrected if done > corrected_at else CATALOG
        check(steps[:done], scans=so_far, memo=memo, catalog=catalog)
    catalog = corrected if len(steps) > corrected_at else CATALOG
    at_close = check(steps, scans=scans, memo=memo, catalog=catalog)
    from_scratch = check(steps, scans=scans, catalog=catalog)
    assert at_close == from_scratch


@settings(max_examples=80, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.floats(min_value=-1.5, max_value=1.5),
    st.sets(st.sampled_from(sorted(EXPECTED)), max_size=2),
    st.lists(st.integers(min_value=0, max_value=4), min_size=12, max_size=12),
    st.integers(min_value=1, max_value=9),
)
def test_scans_heard_late_or_undone_pair_as_if_from_scratch(
    rng, lead, left_out, delays, undone_at
) -> None:
    """The daemon explains again after every step and every scan it hears of, resuming the
    pairing where the last call stopped. A scan may reach it some steps after it was made (a
    slow scanner, a backdated manual entry), a unit may be scanned twice, and the packer may
    undo a scan: every call's report is exactly that of one explanation from scratch."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n) if sku not in left_out]
    rng.shuffle(units)
    steps, scans = packed([192.0, *units], rng, lead)
    scans.append(UnitScan(rng.choice(sorted(EXPECTED)), 1, rng.uniform(0, len(steps))))
    undone = rng.choice(scans)  # heard as any other, gone from call `undone_at` on
    # Scan i is heard of `delays[i]` steps after the step it was made before.
    heard_at = [
        next((d for d, s in enumerate(steps) if s.at >= scan.at), len(steps)) + delay
        for scan, delay in zip(scans, delays, strict=False)
    ]
    memo = InsertionMemo()
    for done in range(1, len(steps) + 1):
        heard = [
            scan
            for scan, at in zip(scans, heard_at, strict=True)
            if at < done and not (scan is undone and done >= undone_at)
        ]
        resumed = check(steps[:done], scans=heard, memo=memo)
        assert resumed == check(steps[:done], scans=heard), done
    assert check(steps, scans=scans, memo=memo) == check(steps, scans=scans)


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.floats(min_value=-0.4, max_value=0.9))
def test_a_memo_given_other_steps_explains_them_from_scratch(rng, lead) -> None:
    """The memo resumes only from the very steps it walked: the same scans with other steps (a
    look-alike of the tea where the tea was) are explained from scratch."""
    units = [sku for sku, n in EXPECTED.items() for _ in range(n)]
    rng.shuffle(units)
    memo = InsertionMemo()
    steps, scans = packed([192.0, *units], rng, lead)
    assert check(steps, scans=scans, memo=memo) == check(steps, scans=scans)
    tea = units.index("TEA") + 1
    look_alike = [*steps[:tea], WeightStep(steps[tea].from_g, steps[tea].from_g + 268 * 1.06, tea)]
    level = look_alike[-1].to_g
    for step in steps[tea + 1 :]:
        look_alike.append(WeightStep(level, level + step.delta_g, step.at))
        level += step.delta_g
    assert check(look_alike, scans=scans, memo=memo) == check(look_alike, scans=scans)
