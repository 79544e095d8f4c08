from __future__ import annotations

import itertools
import math
import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from station.domain import BoxType, Catalog, CatalogItem
from station.verification import (
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    VerificationPolicy,
)
from station.weight_check import (
    RecentCartons,
    ScaleState,
    WeightCheckConfig,
    WeightMeasurement,
    _Budget,
    _Candidate,
    _combinations,
    absence_detection,
    evaluate_weight,
    expected_weight,
    lookalike_detection,
    tolerance_g,
)

# The worked example of docs/weight-verification.md.
CONFIG = WeightCheckConfig(paperwork_g=12, paperwork_spread_g=3, fill_spread_g=6)
UNITS = {"MUG-BLUE": 2, "EAR-8": 1, "TEA-250": 3}
SCALE_MPE_G = 1.5


def settled(gross_g: float, mpe: float = SCALE_MPE_G) -> WeightMeasurement:
    return WeightMeasurement(ScaleState.SETTLED, gross_g=gross_g, scale_error_g=mpe)


def weigh(catalog: Catalog, units: dict[str, int], gross_g: float):
    return evaluate_weight(units, catalog, catalog.boxes["BOX-S"], settled(gross_g), CONFIG)


def test_worked_example_matches_the_document(catalog: Catalog) -> None:
    expected = expected_weight(UNITS, catalog, catalog.boxes["BOX-S"], CONFIG.packing_materials())
    assert expected.mean_g == pytest.approx(1774.0)
    assert expected.sigma_g**2 == pytest.approx(129.25)
    assert tolerance_g(expected.sigma_g, SCALE_MPE_G, CONFIG) == pytest.approx(34.21, abs=0.01)


def test_exact_weight_confirms_heavy_skus_and_admits_light_ones_are_unchecked(catalog) -> None:
    report = weigh(catalog, UNITS, 1774.0)
    assert report.state is ChannelState.OK
    assert report.discrepancy is Discrepancy.NONE
    mug, earrings = report.finding_for("MUG-BLUE"), report.finding_for("EAR-8")
    assert mug.status is FindingStatus.CONFIRMED and mug.confidence > 0.999
    assert earrings.status is FindingStatus.UNCERTAIN
    assert earrings.detail == "a missing Silver Earrings (8 g) would hide inside ±34 g"


def test_missing_mug_is_named_with_grams_and_blocks(catalog: Catalog) -> None:
    report = weigh(catalog, UNITS, 1774.0 - 412)
    assert report.discrepancy is Discrepancy.DEFICIT
    assert report.reasons[0].message == (
        "Carton is 412 g light (tolerance ±34 g): most likely 1 x Blue Mug (MUG-BLUE)."
    )
    assert report.measurements["delta_g"] == pytest.approx(-412)
    assert report.measurements["expected_g"] == pytest.approx(1774)
    mug = report.finding_for("MUG-BLUE")
    assert (mug.status, mug.expected, mug.observed) == (FindingStatus.MISSING, 2, 1)
    assert mug.confidence > 0.95
    assert report.explanations[0].delta_units == {"MUG-BLUE": -1}
    verdict = VerificationPolicy().decide(UNITS, [report])
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.missing] == [("MUG-BLUE", 1)]


def test_extra_tea_is_a_surplus(catalog: Catalog) -> None:
    report = weigh(catalog, UNITS, 1774.0 + 250)
    assert report.discrepancy is Discrepancy.SURPLUS
    tea = report.finding_for("TEA-250")
    assert (tea.status, tea.observed) == (FindingStatus.EXTRA, 4)
    assert report.reasons[0].message.startswith("Carton is 250 g heavy (tolerance ±34 g)")


def test_ambiguous_deficit_names_no_sku_but_still_blocks() -> None:
    # Two SKUs of the same weight: the scale cannot tell which one is missing.
    catalog = Catalog.from_lists(
        [
            CatalogItem(sku="RED", name="Red Mug", unit_weight_g=400, weight_spread_g=4),
            CatalogItem(sku="GREEN", name="Green Mug", unit_weight_g=400, weight_spread_g=4),
        ],
        [BoxType(code="BOX-S", name="Small", tare_g=180, tare_spread_g=5)],
    )
    units = {"RED": 1, "GREEN": 1}
    report = weigh(catalog, units, 180 + 12 + 400)
    assert report.discrepancy is Discrepancy.DEFICIT
    assert not [f for f in report.findings if f.status is FindingStatus.MISSING]
    assert "possibly 1 x Green Mug (GREEN) or 1 x Red Mug (RED)" in report.reasons[0].message
    assert VerificationPolicy().decide(units, [report]).outcome is Outcome.BLOCK


def test_unexplainable_deficit_says_so(catalog: Catalog) -> None:
    report = weigh(catalog, UNITS, 40.0)
    assert report.discrepancy is Discrepancy.DEFICIT
    assert report.explanations == ()
    assert "no combination of the order's items explains it" in report.reasons[0].message


def test_variable_weight_sku_is_not_applicable_and_widens_tolerance(catalog: Catalog) -> None:
    with_cheese = {**UNITS, "CHEESE": 1}
    report = weigh(catalog, with_cheese, 1774.0 + 500 + 60)  # a heavier cheese than average
    assert report.discrepancy is Discrepancy.NONE
    assert report.finding_for("CHEESE").status is FindingStatus.NOT_APPLICABLE
    assert report.measurements["tolerance_g"] > 120


def test_sku_without_a_unit_weight_makes_the_channel_unsure(catalog: Catalog) -> None:
    report = weigh(catalog, {**UNITS, "NOWEIGHT": 1}, 1774.0)
    assert report.state is ChannelState.UNSURE
    assert "NOWEIGHT" in report.reasons[0].message


def test_net_reading_leaves_the_box_out(catalog: Catalog) -> None:
    net = WeightMeasurement(ScaleState.SETTLED, net_g=1774.0 - 180, scale_error_g=SCALE_MPE_G)
    report = evaluate_weight(UNITS, catalog, None, net, CONFIG)
    assert report.discrepancy is Discrepancy.NONE
    assert report.measurements["expected_g"] == pytest.approx(1594)


def test_gross_reading_without_a_box_is_unsure(catalog: Catalog) -> None:
    report = evaluate_weight(UNITS, catalog, None, settled(1774.0), CONFIG)
    assert (report.state, report.reasons[0].code) == (ChannelState.UNSURE, "no_box")


@pytest.mark.parametrize(
    "measurement",
    [
        WeightMeasurement(ScaleState.SETTLED),
        WeightMeasurement(ScaleState.SETTLED, gross_g=1.0, net_g=1.0),
        WeightMeasurement(ScaleState.SETTLED, gross_g=math.nan),
        WeightMeasurement(ScaleState.SETTLED, gross_g=-3.0),
    ],
)
def test_nonsense_settled_readings_fail_closed(catalog: Catalog, measurement) -> None:
    report = evaluate_weight(UNITS, catalog, catalog.boxes["BOX-S"], measurement, CONFIG)
    assert report.state is ChannelState.UNSURE


def test_tolerance_floor_applies_to_tiny_spreads() -> None:
    config = WeightCheckConfig(min_tolerance_g=5.0)
    assert tolerance_g(0.1, 0.0, config) == 5.0


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        WeightCheckConfig(tolerance_percent=5)


# --- properties -------------------------------------------------------------------------------


@st.composite
def cartons(draw, min_skus: int = 1, max_skus: int = 8, max_units: int = 6):
    n = draw(st.integers(min_skus, max_skus))
    weights = draw(st.lists(st.floats(1, 3000), min_size=n, max_size=n))
    items = [
        CatalogItem(
            sku=f"S{i}",
            name=f"Item {i}",
            unit_weight_g=w,
            weight_spread_g=draw(st.sampled_from([0.0, 0.01, 0.05])) * w,
        )
        for i, w in enumerate(weights)
    ]
    box = BoxType(
        code="B", name="Box", tare_g=draw(st.floats(0, 800)), tare_spread_g=draw(st.floats(0, 5))
    )
    units = {item.sku: draw(st.integers(1, max_units)) for item in items}
    return Catalog.from_lists(items, [box]), box, units


configs = st.builds(
    WeightCheckConfig,
    paperwork_g=st.floats(0, 50),
    paperwork_spread_g=st.floats(0, 5),
    fill_spread_g=st.floats(0, 10),
    z=st.floats(2, 4),
    min_tolerance_g=st.floats(0.1, 20),
)
mpes = st.floats(0, 5)


def _mean(catalog, box, units, config) -> float:
    return expected_weight(units, catalog, box, config.packing_materials()).mean_g


@given(cartons(), configs, mpes, st.data())
def test_removing_one_unit_heavier_than_tolerance_is_a_deficit(carton, config, mpe, data) -> None:
    catalog, box, units = carton
    sku = data.draw(st.sampled_from(sorted(units)))
    unit_g = catalog.items[sku].unit_weight_g
    mean = _mean(catalog, box, units, config)
    report = evaluate_weight(units, catalog, box, settled(mean, mpe), config)
    assume(unit_g > report.measurements["tolerance_g"] * 1.0001)
    short = evaluate_weight(units, catalog, box, settled(mean - unit_g, mpe), config)
    assert short.discrepancy is Discrepancy.DEFICIT
    assert VerificationPolicy().decide(units, [short]).outcome is Outcome.BLOCK


@given(cartons(), configs, mpes)
def test_exact_expected_weight_is_never_a_discrepancy(carton, config, mpe) -> None:
    catalog, box, units = carton
    report = evaluate_weight(
        units, catalog, box, settled(_mean(catalog, box, units, config), mpe), config
    )
    assert report.state is ChannelState.OK
    assert report.discrepancy is Discrepancy.NONE


@given(cartons(), configs, mpes, st.floats(0, 5000))
def test_tolerance_is_symmetric(carton, config, mpe, offset) -> None:
    catalog, box, units = carton
    mean = _mean(catalog, box, units, config)
    assume(mean - offset >= 0)
    light = evaluate_weight(units, catalog, box, settled(mean - offset, mpe), config)
    heavy = evaluate_weight(units, catalog, box, settled(mean + offset, mpe), config)
    assert (light.discrepancy is Discrepancy.NONE) == (heavy.discrepancy is Discrepancy.NONE)
    assert light.measurements["tolerance_g"] == heavy.measurements["tolerance_g"]


@given(
    st.floats(0, 100),
    st.floats(0, 100),
    st.floats(0, 20),
    configs,
    st.sampled_from(["unit", "scale"]),
)
def test_tolerance_grows_with_every_spread(sigma, mpe, more, config, which) -> None:
    wider = (math.hypot(sigma, more), mpe) if which == "unit" else (sigma, mpe + more)
    assert tolerance_g(*wider, config) >= tolerance_g(sigma, mpe, config)


@given(
    cartons(),
    configs,
    mpes,
    st.sampled_from([s for s in ScaleState if s is not ScaleState.SETTLED]),
)
def test_an_unsettled_scale_never_reports_ok(carton, config, mpe, state) -> None:
    catalog, box, units = carton
    reading = WeightMeasurement(
        state, gross_g=_mean(catalog, box, units, config), scale_error_g=mpe
    )
    report = evaluate_weight(units, catalog, box, reading, config)
    assert report.state is not ChannelState.OK
    assert VerificationPolicy().decide(units, [report]).outcome is not Outcome.PASS


@settings(max_examples=30, deadline=None)
@given(cartons(min_skus=30, max_skus=40, max_units=1), st.floats(-20_000, 20_000), st.data())
def test_explanation_search_is_fast_for_large_cartons(carton, delta, data) -> None:
    catalog, box, units = carton
    # Spread 150 units over the SKUs, then weigh the carton `delta` grams off.
    for _ in range(150 - len(units)):
        units[data.draw(st.sampled_from(sorted(units)))] += 1
    config = WeightCheckConfig(max_explanation_units=8)
    mean = _mean(catalog, box, units, config)
    assume(mean + delta >= 0)
    started = time.perf_counter()
    report = evaluate_weight(units, catalog, box, settled(mean + delta), config)
    assert time.perf_counter() - started < 1.0
    assert len(report.explanations) <= config.max_explanations


def look_alikes(skus: int) -> tuple[Catalog, BoxType, list[CatalogItem]]:
    """`skus` SKUs of 20, 21, 22 ... g and a 300 g box: many combinations weigh the same."""
    items = [
        CatalogItem(sku=f"S{i}", name=f"Item {i}", unit_weight_g=20 + i, weight_spread_g=1)
        for i in range(skus)
    ]
    box = BoxType(code="B", name="Box", tare_g=300, tare_spread_g=5)
    return Catalog.from_lists(items, [box]), box, items


def test_look_alike_skus_exhaust_the_budget_but_still_block() -> None:
    # 40 SKUs of 20-60 g in a 150-unit carton, 250 g light: thousands of combinations fit.
    catalog, box, items = look_alikes(40)
    units = {item.sku: 4 if i < 30 else 3 for i, item in enumerate(items)}
    assert sum(units.values()) == 150
    config = WeightCheckConfig()
    mean = _mean(catalog, box, units, config)
    started = time.perf_counter()
    report = evaluate_weight(units, catalog, box, settled(mean - 250), config)
    assert time.perf_counter() - started < 0.5
    assert report.measurements["explanation_search_truncated"] == 1.0
    assert report.discrepancy is Discrepancy.DEFICIT
    assert "other combinations" in report.reasons[0].message
    assert VerificationPolicy().decide(units, [report]).outcome is Outcome.BLOCK


def test_what_the_packer_is_told_at_the_start_is_what_the_close_decides(catalog) -> None:
    """absence_detection (the plan at order start) and evaluate_weight (at close, on the exact
    expected weight) agree SKU by SKU on which units the weight can vouch for."""
    box = catalog.boxes["BOX-S"]
    expected = expected_weight(UNITS, catalog, box, CONFIG.packing_materials())
    power = absence_detection(UNITS, catalog, box, lambda grams: SCALE_MPE_G, CONFIG)
    report = weigh(catalog, UNITS, expected.mean_g)
    for sku in UNITS:
        finding = report.finding_for(sku)
        confirmed = finding.status is FindingStatus.CONFIRMED
        assert (power[sku] > 0) == confirmed
        if confirmed:
            assert power[sku] == pytest.approx(finding.confidence)
    assert power["EAR-8"] == 0.0 and power["MUG-BLUE"] > 0.999


def test_the_explanations_scored_are_capped_and_the_carton_still_blocks() -> None:
    # 25 SKUs of 20-44 g, 100 units, 120 g light: thousands of combinations fit the window, and
    # scoring each is what made such cartons take hundreds of milliseconds.
    catalog, box, items = look_alikes(25)
    units = {item.sku: 4 for item in items}
    for cap in (20, 150):
        config = WeightCheckConfig(max_hypotheses=cap)
        mean = _mean(catalog, box, units, config)
        report = evaluate_weight(units, catalog, box, settled(mean - 120), config)
        assert report.measurements["explanation_search_truncated"] == 1.0
        unlisted = re.search(r"or one of (\d+) other combinations", report.reasons[0].message)
        assert unlisted is not None
        assert int(unlisted.group(1)) == cap - config.max_explanations
        assert VerificationPolicy().decide(units, [report]).outcome is Outcome.BLOCK


def sizes_and_colours(*extra: CatalogItem) -> Catalog:
    """A T-shirt whose other size weighs 80 g more, socks whose other colour weighs the same."""
    return Catalog.from_lists(
        [
            CatalogItem(
                sku="TEE-M",
                name="T-shirt M",
                unit_weight_g=250,
                weight_spread_g=4,
                lookalike_group="TEE",
            ),
            CatalogItem(
                sku="TEE-XL",
                name="T-shirt XL",
                unit_weight_g=330,
                weight_spread_g=4,
                lookalike_group="TEE",
            ),
            CatalogItem(
                sku="SOCK-R",
                name="Socks red",
                unit_weight_g=60,
                weight_spread_g=2,
                lookalike_group="SOCK",
            ),
            CatalogItem(
                sku="SOCK-B",
                name="Socks blue",
                unit_weight_g=61,
                weight_spread_g=2,
                lookalike_group="SOCK",
            ),
            CatalogItem(sku="MUG", name="Mug", unit_weight_g=350, weight_spread_g=3),
            *extra,
        ],
        [BoxType(code="BOX-S", name="Small box", tare_g=200, tare_spread_g=5)],
    )


def test_the_weight_tells_a_look_alike_apart_when_the_close_would_see_it_swapped() -> None:
    """lookalike_detection (the plan) and evaluate_weight (the close) agree: the XL packed for
    the M reads outside the tolerance, the other colour of socks inside it."""
    catalog = sizes_and_colours()
    box, units = catalog.boxes["BOX-S"], {"TEE-M": 1, "SOCK-R": 2, "MUG": 1}
    power = lookalike_detection(units, catalog, box, lambda grams: SCALE_MPE_G, CONFIG)
    assert set(power) == {"TEE-M", "SOCK-R"}  # the mug has no look-alike
    assert power["TEE-M"] > 0.999 and power["SOCK-R"] == 0.0
    mean = _mean(catalog, box, units, CONFIG)
    xl_for_m = evaluate_weight(units, catalog, box, settled(mean + 80), CONFIG)
    assert xl_for_m.discrepancy is Discrepancy.SURPLUS
    blue_for_red = evaluate_weight(units, catalog, box, settled(mean + 1), CONFIG)
    assert blue_for_red.discrepancy is Discrepancy.NONE


def test_the_nearest_look_alike_decides_and_an_unknown_weight_tells_nothing() -> None:
    large = CatalogItem(sku="TEE-L", name="T-shirt L", unit_weight_g=262, lookalike_group="TEE")
    units = {"TEE-M": 1, "MUG": 1}
    for extra in (large, large.model_copy(update={"unit_weight_g": None})):
        catalog = sizes_and_colours(extra)
        box = catalog.boxes["BOX-S"]
        power = lookalike_detection(units, catalog, box, lambda grams: SCALE_MPE_G, CONFIG)
        assert power == {"TEE-M": 0.0}


# --- a surplus explained by the usual extras ---------------------------------------------------

NEIGHBOURS = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Blue Mug", unit_weight_g=412, weight_spread_g=4),
        CatalogItem(sku="SOCKS", name="Wool Socks", unit_weight_g=62, weight_spread_g=2),
        CatalogItem(sku="CANDLE", name="Soy Candle", unit_weight_g=320, weight_spread_g=5),
        CatalogItem(sku="BOWL", name="Blue Bowl", unit_weight_g=413, weight_spread_g=4),
        CatalogItem(sku="HONEY", name="Honey", unit_weight_g=320, variable_weight=True),
    ],
    [BoxType(code="BOX-S", name="Small", tare_g=180, tare_spread_g=5)],
)
ORDERED = {"MUG": 1, "SOCKS": 2}
ORDERED_G = 180 + 12 + 412 + 2 * 62


def weigh_with(gross_g: float, usual: tuple[str, ...] = (), config=CONFIG):
    box = NEIGHBOURS.boxes["BOX-S"]
    return evaluate_weight(ORDERED, NEIGHBOURS, box, settled(gross_g), config, usual_extras=usual)


def test_a_candle_of_the_last_order_is_named_extra_where_only_the_order_had_five_socks() -> None:
    alone = weigh_with(ORDERED_G + 320)
    assert alone.explanations[0].delta_units == {"SOCKS": 5}  # the order's SKUs cannot do better
    assert alone.finding_for("CANDLE") is None

    report = weigh_with(ORDERED_G + 320, usual=("CANDLE", "HONEY", "UNKNOWN-SKU"))
    assert report.explanations[0].delta_units == {"CANDLE": 1}
    candle = report.finding_for("CANDLE")
    assert candle is not None
    assert (candle.status, candle.expected, candle.observed) == (FindingStatus.EXTRA, 0, 1)
    assert "1 x Soy Candle (CANDLE)" in report.reasons[0].message
    assert not {"HONEY", "UNKNOWN-SKU"} & {s for e in report.explanations for s in e.delta_units}
    verdict = VerificationPolicy().decide(ORDERED, [report])
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.extra] == [("CANDLE", 1)] and not verdict.missing


def test_the_site_list_of_common_extras_counts_as_much_as_the_last_orders() -> None:
    config = CONFIG.model_copy(update={"common_extras": ("CANDLE",)})
    assert weigh_with(ORDERED_G + 320, config=config).explanations[0].delta_units == {"CANDLE": 1}


def test_a_usual_extra_as_heavy_as_an_ordered_sku_leaves_the_surplus_unnamed() -> None:
    report = weigh_with(ORDERED_G + 412, usual=("BOWL",))
    assert {frozenset(e.delta_units) for e in report.explanations[:2]} == {
        frozenset({"MUG"}),
        frozenset({"BOWL"}),
    }
    assert not [f for f in report.findings if f.status is FindingStatus.EXTRA]
    assert VerificationPolicy().decide(ORDERED, [report]).outcome is Outcome.BLOCK


@settings(max_examples=60, deadline=None)
@given(light_g=st.floats(min_value=40, max_value=700))
def test_a_deficit_is_never_explained_by_what_was_not_ordered(light_g: float) -> None:
    report = weigh_with(ORDERED_G - light_g, usual=("CANDLE", "BOWL"))
    named = {s for e in report.explanations for s in e.delta_units}
    named |= {f.sku for f in report.findings}
    assert not named & {"CANDLE", "BOWL"}, report


def test_recent_cartons_keep_the_last_ones_besides_the_carton_closed_again() -> None:
    recent = RecentCartons(keep=2)
    for order, skus in (("O1", {"A"}), ("O2", {"B"}), ("O3", {"C"})):
        assert recent.skus_besides((order, "C1")) <= {"A", "B"}
        recent.remember((order, "C1"), skus)
    closing = ("O3", "C1")
    assert recent.skus_besides(closing) == {"A", "B"}  # O3's own SKUs never
    recent.remember(closing, {"C", "D"})  # closed again, its manifest changed
    assert recent.skus_besides(closing) == {"A", "B"}  # a second close sees as many as the first
    recent.remember(("O4", "C1"), {"E"})
    assert recent.skus_besides(("O4", "C1")) == {"B", "C", "D"}  # O1 forgotten
    assert recent.skus_besides(("O5", "C1")) == {"C", "D", "E"}  # the last two
    assert RecentCartons(keep=0).skus_besides(closing) == frozenset()
    nothing = RecentCartons(keep=0)
    nothing.remember(("O1", "C1"), {"A"})
    assert nothing.skus_besides(("O2", "C1")) == frozenset()


def one_by_one(
    candidates: list[_Candidate], size: int, low_g: float, high_g: float, budget: _Budget
) -> list[tuple[int, ...]]:
    """The search as first written: every index tried in turn, one budget step each."""
    found: list[tuple[int, ...]] = []

    def extend(start: int, slots: int, total: float, chosen: tuple[int, ...]) -> None:
        if slots == 0:
            if total >= low_g:
                found.append(chosen)
            return
        if total + slots * candidates[-1].unit_g < low_g:
            return
        for i in range(start, len(candidates)):
            budget.left -= 1
            if budget.left < 0 or total + slots * candidates[i].unit_g > high_g:
                return
            if chosen.count(i) < candidates[i].limit:
                extend(i, slots - 1, total + candidates[i].unit_g, (*chosen, i))

    extend(0, size, 0.0, ())
    return found


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([5.0, 20.0, 50.0, 120.0]) | st.floats(1, 400), st.integers(1, 3)),
        min_size=1,
        max_size=9,
    ),
    st.integers(min_value=1, max_value=4),
    st.floats(min_value=-100, max_value=1200),
    st.floats(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=400),
)
def test_the_explanation_search_finds_every_combination_in_the_window_in_order(
    weighed, size, low_g, width_g, steps
) -> None:
    """Every multiset of `size` candidates (each at most its limit) whose weight lies in the
    window, in ascending index order, as brute force finds them. A budget cuts the search where
    trying every index in turn, one step each, would: the search passes over hopeless light
    candidates at once but spends and stops exactly as that."""
    candidates = sorted(
        (_Candidate(f"S{k}", grams, 1.0, limit) for k, (grams, limit) in enumerate(weighed)),
        key=lambda c: (c.unit_g, c.sku),
    )
    high_g = low_g + width_g
    everything = [
        combo
        for combo in itertools.combinations_with_replacement(range(len(candidates)), size)
        if all(combo.count(i) <= candidates[i].limit for i in set(combo))
        and low_g <= sum(candidates[i].unit_g for i in combo) <= high_g
    ]
    assert list(_combinations(candidates, size, low_g, high_g, _Budget(10**9))) == everything
    budget, reference = _Budget(steps), _Budget(steps)
    cut = list(_combinations(candidates, size, low_g, high_g, budget))
    assert cut == one_by_one(candidates, size, low_g, high_g, reference)
    assert max(budget.left, -1) == max(reference.left, -1)  # below zero: cut short, no more
