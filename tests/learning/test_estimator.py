"""The robust estimator: properties over generated samples, and the confidence rules."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.learning.estimator import (
    Flag,
    LearningConfig,
    SampleSource,
    WeightSample,
    compare,
    estimate,
)

CONFIG = LearningConfig(min_samples=10)


def clean_samples(mean: float, spread: float, count: int, seed: int) -> list[WeightSample]:
    rng = random.Random(seed)
    return [WeightSample(rng.gauss(mean, spread)) for _ in range(count)]


means = st.floats(100, 5_000)
spreads = st.floats(0.5, 20)
seeds = st.integers(0, 10_000)


@settings(max_examples=150, deadline=None)
@given(
    mean=means,
    spread=spreads,
    count=st.integers(40, 120),
    outlier_share=st.floats(0, 0.25),
    offsets=st.lists(st.floats(12, 500) | st.floats(-500, -12), min_size=1, max_size=10),
    seed=seeds,
)
def test_a_quarter_of_gross_outliers_moves_the_mean_little(
    mean, spread, count, outlier_share, offsets, seed
):
    """Up to 25 % of samples anywhere 12-500 sigma off: they are rejected and the mean stays
    within a fraction of a unit's spread of the truth."""
    samples = clean_samples(mean, spread, count, seed)
    bad = int(outlier_share * count)
    rng = random.Random(seed + 1)
    for i in rng.sample(range(count), bad):
        offset = offsets[i % len(offsets)] * spread
        # A unit cannot weigh less than nothing: a light outlier that would is a heavy one.
        samples[i] = WeightSample(mean + offset if mean + offset > 0 else mean - offset)
    result = estimate(samples, CONFIG)
    assert result is not None
    assert abs(result.mean_g - mean) < 0.5 * spread
    assert result.outliers >= bad * 0.9
    assert 0.6 * spread < result.spread_g < 1.6 * spread


@settings(max_examples=100, deadline=None)
@given(mean=means, spread=spreads, count=st.integers(1, 60), seed=seeds, data=st.data())
def test_the_order_of_samples_does_not_matter(mean, spread, count, seed, data):
    samples = clean_samples(mean, spread, count, seed)
    shuffled = data.draw(st.permutations(samples))
    first, second = estimate(samples, CONFIG), estimate(shuffled, CONFIG)
    assert first is not None and second is not None
    assert first.inliers == second.inliers and first.confident == second.confident
    assert math.isclose(first.mean_g, second.mean_g, rel_tol=1e-9)
    assert math.isclose(first.spread_g, second.spread_g, rel_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(mean=means, spread=spreads, shift=st.floats(-4, 4_000), seed=seeds)
def test_shifting_every_sample_shifts_the_mean_only(mean, spread, shift, seed):
    samples = clean_samples(mean + 100, spread, 30, seed)
    moved = [WeightSample(s.grams_per_unit + shift) for s in samples]
    first, second = estimate(samples, CONFIG), estimate(moved, CONFIG)
    assert math.isclose(second.mean_g, first.mean_g + shift, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(second.spread_g, first.spread_g, rel_tol=1e-6, abs_tol=1e-6)
    assert second.inliers == first.inliers


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(0.1, 100_000), min_size=1, max_size=80),
    units=st.lists(st.integers(1, 50), min_size=1, max_size=80),
    noise=st.floats(0, 50),
)
def test_any_samples_give_a_finite_estimate_inside_their_range(values, units, noise):
    samples = [WeightSample(v, units[i % len(units)], noise) for i, v in enumerate(values)]
    result = estimate(samples, CONFIG)
    assert result is not None
    assert min(values) - 1e-6 <= result.mean_g <= max(values) + 1e-6
    assert math.isfinite(result.spread_g) and result.spread_g >= CONFIG.min_spread_g
    assert 1 <= result.inliers <= result.samples == len(values)
    assert result.confident == (result.why_not == "")


def test_no_samples_no_estimate():
    assert estimate([], CONFIG) is None
    assert estimate([WeightSample(float("nan"))], CONFIG) is None


def test_too_few_samples_are_not_confident():
    result = estimate(clean_samples(400, 4, 9, seed=1), CONFIG)
    assert not result.confident and "9 of the 10" in result.why_not
    assert estimate(clean_samples(400, 4, 10, seed=1), CONFIG).confident


def test_two_variants_under_one_sku_are_mixed_not_averaged():
    """60 % at 400 g and 40 % at 460 g: the median side is kept, and so many rejected samples
    say the SKU is not one weight."""
    samples = clean_samples(400, 2, 30, seed=2) + clean_samples(460, 2, 20, seed=3)
    result = estimate(samples, CONFIG)
    assert abs(result.mean_g - 400) < 2
    assert not result.confident and "mixed" in result.why_not


def test_a_vague_mean_is_not_confident():
    # 10 samples of a unit varying 30 g: the mean is known to ±9 g, more than 1 % of 400 g.
    result = estimate(clean_samples(400, 30, 10, seed=4), CONFIG)
    assert result.standard_error_g > 4 and not result.confident and "±" in result.why_not


def test_carton_samples_count_by_their_units_and_noise():
    """Twelve-unit carton samples average out unit spread: the spread estimate recovers the
    unit spread (not the sample's), and the box's noise is taken out of it."""
    rng = random.Random(5)
    unit_spread, box_spread, n = 4.0, 5.0, 12
    samples = []
    for _ in range(200):
        total = sum(rng.gauss(300, unit_spread) for _ in range(n)) + rng.gauss(0, box_spread)
        samples.append(WeightSample(total / n, n, box_spread / n, SampleSource.SINGLE_SKU_CARTON))
    result = estimate(samples, CONFIG)
    assert abs(result.mean_g - 300) < 0.3
    assert 3.0 < result.spread_g < 5.0
    assert result.standard_error_g < 0.2


def test_identical_readings_get_the_floor_spread():
    result = estimate([WeightSample(250.0)] * 25, CONFIG)
    assert result.mean_g == 250.0 and result.spread_g == CONFIG.min_spread_g
    assert result.confident


@pytest.mark.parametrize(
    ("catalog_g", "catalog_spread", "flags"),
    [
        (400.0, 4.0, ()),
        (380.0, 4.0, (Flag.MEAN_OFF,)),
        (400.0, 1.0, (Flag.SPREAD_UNDERSTATED,)),
        (None, 0.0, (Flag.NO_CATALOG_WEIGHT,)),
    ],
)
def test_compare_flags(catalog_g, catalog_spread, flags):
    learned = estimate(clean_samples(400, 4, 100, seed=6), CONFIG)
    comparison = compare(learned, catalog_g, catalog_spread, CONFIG)
    assert comparison.flags == flags
    if catalog_g is not None:
        expected = (catalog_g - learned.mean_g) / math.hypot(
            max(learned.spread_g, catalog_spread), learned.standard_error_g
        )
        assert math.isclose(comparison.disagreement_sigmas, expected)


def test_compare_does_not_judge_a_vague_estimate():
    learned = estimate(clean_samples(400, 4, 5, seed=7), CONFIG)
    assert compare(learned, 300.0, 4.0, CONFIG).flags == (Flag.NOT_CONFIDENT,)


def test_median_start_matches_statistics_for_single_units():
    samples = clean_samples(120, 2, 51, seed=8)
    values = sorted(s.grams_per_unit for s in samples)
    result = estimate(samples, CONFIG)
    assert abs(result.mean_g - statistics.fmean(values)) < 0.5


def test_a_handful_of_normal_samples_is_not_cut_down():
    """Four samples' MAD can be a fraction of the true spread; none of them is an outlier."""
    for seed in range(200):
        samples = clean_samples(268, 3, 4, seed=seed)
        assert estimate(samples, CONFIG).inliers == 4, seed
