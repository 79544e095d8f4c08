"""Robust unit-weight estimates from weighed samples, and when one may replace the catalog's. Pure.

A sample is one measurement of a unit's weight: a single unit on the empty platter, a carton of n
units of one SKU with its box and paperwork subtracted and divided by n, or the weight step one
unit added to a carton. Each carries how many units it averages (`units`) and the standard
deviation of everything in it that is not the units themselves (`noise_g`, per unit: the box's
tare spread, the paperwork, the scale's error, all divided by n). A sample of n units therefore
varies as  sd_i^2 = s^2 / n + noise_i^2  around the unit mean, s being the unit-to-unit spread.

Why median + MAD first, then a reweighted mean (a one-step "reject, then average") instead of a
Huber M-estimator: the samples are contaminated in ways that are not small-noise (a unit scanned
but left out makes a carton sample (n-1)/n of the truth; a second item dropped in makes it far
heavier), and at a new site the contamination can be a large share. The median and the MAD have
a 50 % breakdown point, need no starting value or iteration, and are exactly invariant under
reordering, so the same samples always give the same answer on every station. Huber's estimator
tolerates far fewer gross errors before it moves and still needs a robust scale (the MAD) to start.
The cost of the median is efficiency (64 % of the mean's on clean normal data); the second step
gets it back: every sample within `outlier_cut` robust standard deviations is kept and the kept
ones are averaged with inverse-variance weights, which is efficient and handles samples of
different sizes (a 12-unit carton says more about the mean than one unit does).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The MAD of a normal distribution is 0.6745 sigma: multiplying by 1.4826 makes it estimate sigma.
_MAD_TO_SIGMA = 1.4826
_FEW_SAMPLES = 8


class SampleSource(StrEnum):
    SINGLE_SKU_CARTON = "single_sku_carton"  # a confirmed carton holding n units of one SKU
    UNIT_WEIGHED = "unit_weighed"  # the weigh-one-unit flow
    INSERTION = "insertion"  # one unit's weight step while packing, confirmed by a scan or tag
    BOX_WEIGHED = "box_weighed"  # an empty box in the weigh-one-unit flow


@dataclass(frozen=True, slots=True)
class WeightSample:
    grams_per_unit: float
    units: int = 1  # how many units the sample averages
    noise_g: float = 0.0  # sd of the rest of the sample (box, paperwork, scale), per unit
    source: SampleSource = SampleSource.UNIT_WEIGHED
    # A carton's sample: the box it was packed in and the tare subtracted for it, so it is
    # reduced again once that box's tare is learned or corrected (`rebased`).
    box: str | None = None
    tare_g: float | None = None

    def rebased(self, tare_now_g: float | None) -> WeightSample:
        """This sample with its box's tare now in place of the one it subtracted."""
        if self.tare_g is None or tare_now_g is None or tare_now_g == self.tare_g:
            return self
        grams = self.grams_per_unit + (self.tare_g - tare_now_g) / self.units
        return replace(self, grams_per_unit=grams, tare_g=tare_now_g)


class LearningConfig(BaseModel):
    """How learned weights are estimated, and whether they replace the catalog's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["off", "report", "use"] = Field(
        default="report",
        description="off: learn nothing from cartons (the weigh-one-unit flow still records). "
        "report: learn and report, the weight check keeps the catalog's weights. use: the weight "
        "check takes the learned mean and spread of every SKU and box whose estimate is "
        "confident, the catalog's otherwise.",
    )
    min_samples: int = Field(
        default=20,
        ge=3,
        le=10_000,
        description="Samples (after outlier rejection) a SKU or box needs before its learned "
        "weight may replace the catalog's.",
    )
    max_samples: int = Field(
        default=200,
        ge=10,
        le=100_000,
        description="The store keeps only the latest this many samples per SKU and per box: "
        "estimates follow packaging changes and the file stays bounded.",
    )
    outlier_cut: float = Field(
        default=3.5,
        gt=1,
        le=20,
        description="A sample further than this many robust standard deviations from the "
        "median is rejected as an outlier (a unit left out, another item dropped in).",
    )
    min_inlier_fraction: float = Field(
        default=0.8,
        gt=0.5,
        le=1.0,
        description="Below this share of samples kept, the SKU's weights are mixed (two "
        "variants under one SKU, a packaging change): the estimate is not used.",
    )
    max_standard_error_g: float = Field(
        default=1.0,
        gt=0,
        le=10_000,
        description="The learned mean must be known to within this many grams (standard error), "
        "or to within max_relative_standard_error of itself, whichever is wider, to be used.",
    )
    max_relative_standard_error: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="Relative counterpart of max_standard_error_g (0.01: one percent).",
    )
    min_spread_g: float = Field(
        default=0.5,
        ge=0,
        le=10_000,
        description="Floor for a learned spread: units that weighed identically on a 1 g scale "
        "still differ by a fraction of a gram, and a zero spread would make the tolerance a lie.",
    )
    flag_sigmas: float = Field(
        default=3.0,
        gt=0,
        le=100,
        description="The report flags a SKU whose catalog weight is this many standard "
        "deviations (of the unit spread, learned or catalog, whichever is wider) from the "
        "learned one.",
    )
    spread_ratio_flag: float = Field(
        default=2.0,
        gt=1,
        le=100,
        description="The report flags a SKU whose learned spread is this many times its "
        "catalog spread: the tolerance built from the catalog is too narrow.",
    )
    learn_from_unit_scans: bool = Field(
        default=True,
        description="A carton whose item scans count exactly its units (one SKU) confirms the "
        "count even when the weight disagreed; off: only PASS, a reviewer's release or another "
        "channel's count confirm it.",
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    mean_g: float
    spread_g: float  # one unit's standard deviation
    standard_error_g: float  # of the mean
    samples: int
    inliers: int
    confident: bool
    why_not: str  # empty when confident

    @property
    def outliers(self) -> int:
        return self.samples - self.inliers


def estimate(samples: Sequence[WeightSample], config: LearningConfig) -> Estimate | None:
    """The robust mean and spread of one unit; None without samples."""
    usable = [s for s in samples if math.isfinite(s.grams_per_unit) and s.units >= 1]
    if not usable:
        return None
    values = [s.grams_per_unit for s in usable]
    median = statistics.median(values)
    # The robust spread of one unit: residuals scaled back to one unit (a sample of n units
    # varies sqrt(n) times less), their MAD turned into a standard deviation.
    scaled = [math.sqrt(s.units) * abs(s.grams_per_unit - median) for s in usable]
    robust_spread = max(_MAD_TO_SIGMA * statistics.median(scaled), config.min_spread_g, 1e-9)
    if len(usable) < _FEW_SAMPLES:
        # The MAD of a handful of samples is itself noisy (often far too small): lean towards
        # keeping samples; so few are never confident anyway.
        root_mean_square = math.sqrt(statistics.fmean(v * v for v in scaled))
        robust_spread = max(robust_spread, root_mean_square)
    inliers = [
        s
        for s in usable
        if abs(s.grams_per_unit - median) <= config.outlier_cut * _sample_sd(s, robust_spread)
    ]
    mean = _weighted_mean(inliers, robust_spread)
    spread = max(_unit_spread(inliers, mean), config.min_spread_g)
    mean = _weighted_mean(inliers, spread)
    standard_error = 1.0 / math.sqrt(sum(1.0 / _sample_sd(s, spread) ** 2 for s in inliers))
    why_not = _why_not_confident(len(usable), len(inliers), mean, standard_error, config)
    return Estimate(
        mean_g=mean,
        spread_g=spread,
        standard_error_g=standard_error,
        samples=len(usable),
        inliers=len(inliers),
        confident=not why_not,
        why_not=why_not,
    )


def _sample_sd(sample: WeightSample, unit_spread: float) -> float:
    return max(math.sqrt(unit_spread**2 / sample.units + sample.noise_g**2), 1e-9)


def _weighted_mean(samples: Sequence[WeightSample], unit_spread: float) -> float:
    weights = [1.0 / _sample_sd(s, unit_spread) ** 2 for s in samples]
    return sum(w * s.grams_per_unit for w, s in zip(weights, samples, strict=True)) / sum(weights)


def _unit_spread(samples: Sequence[WeightSample], mean: float) -> float:
    """Method of moments: E[n (x - mean)^2 - n noise^2] = s^2 for a sample of n units."""
    if len(samples) < 2:
        return 0.0
    total = sum(s.units * ((s.grams_per_unit - mean) ** 2 - s.noise_g**2) for s in samples)
    return math.sqrt(max(0.0, total / (len(samples) - 1)))


def _why_not_confident(
    samples: int, inliers: int, mean: float, standard_error: float, config: LearningConfig
) -> str:
    if inliers < config.min_samples:
        return f"{inliers} of the {config.min_samples} samples needed"
    if inliers < config.min_inlier_fraction * samples:
        return f"only {inliers} of {samples} samples agree: mixed weights"
    allowed = max(config.max_standard_error_g, config.max_relative_standard_error * abs(mean))
    if standard_error > allowed:
        return f"mean known to ±{standard_error:.1f} g, needs ±{allowed:.1f} g"
    return ""


class Flag(StrEnum):
    MEAN_OFF = "mean_off"  # the catalog's unit weight is far from the learned one
    SPREAD_UNDERSTATED = "spread_understated"  # units vary more than the catalog says
    NO_CATALOG_WEIGHT = "no_catalog_weight"  # learned, but the catalog has none
    NOT_CONFIDENT = "not_confident"  # too few or too mixed samples to judge


@dataclass(frozen=True, slots=True)
class Comparison:
    """How a learned estimate and the catalog's figure disagree."""

    disagreement_sigmas: float | None  # (catalog - learned) / the wider unit spread
    flags: tuple[Flag, ...]


def compare(
    learned: Estimate, catalog_mean_g: float | None, catalog_spread_g: float, config: LearningConfig
) -> Comparison:
    """The catalog's mean against the learned one, in standard deviations of one unit (the wider
    of the two spreads, so a sloppy catalog spread does not inflate the figure), plus the
    standard error of the learned mean: a barely known mean is not called off."""
    if catalog_mean_g is None:
        flags = (Flag.NO_CATALOG_WEIGHT,) if learned.confident else (Flag.NOT_CONFIDENT,)
        return Comparison(None, flags)
    yardstick = math.hypot(max(learned.spread_g, catalog_spread_g), learned.standard_error_g)
    sigmas = (catalog_mean_g - learned.mean_g) / max(yardstick, 1e-9)
    flags: list[Flag] = []
    if not learned.confident:
        flags.append(Flag.NOT_CONFIDENT)
    else:
        if abs(sigmas) >= config.flag_sigmas:
            flags.append(Flag.MEAN_OFF)
        if learned.spread_g > config.spread_ratio_flag * max(catalog_spread_g, config.min_spread_g):
            flags.append(Flag.SPREAD_UNDERSTATED)
    return Comparison(sigmas, tuple(flags))
