"""Where learned and catalog weights disagree: one row per SKU and box with samples. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from station.domain import Catalog
from station.learning.estimator import Estimate, LearningConfig, compare
from station.learning.store import Subject


@dataclass(frozen=True, slots=True)
class ReportRow:
    subject: Subject
    key: str
    name: str
    catalog_g: float | None
    catalog_spread_g: float | None
    learned_g: float
    learned_spread_g: float
    standard_error_g: float
    samples: int
    inliers: int
    confident: bool
    why_not: str
    disagreement_sigmas: float | None
    flags: tuple[str, ...]


def report_rows(
    catalog: Catalog,
    keys: Callable[[Subject], Iterable[str]],
    estimate_of: Callable[[Subject, str], Estimate | None],
    config: LearningConfig,
) -> list[ReportRow]:
    """Every SKU and box with samples, flagged ones first, then by key."""
    rows: list[ReportRow] = []
    for subject in (Subject.SKU, Subject.BOX):
        for key in keys(subject):
            learned = estimate_of(subject, key)
            if learned is None:
                continue
            name, mean, spread = _catalog_figures(catalog, subject, key)
            comparison = compare(learned, mean, spread or 0.0, config)
            rows.append(
                ReportRow(
                    subject=subject,
                    key=key,
                    name=name,
                    catalog_g=mean,
                    catalog_spread_g=spread,
                    learned_g=learned.mean_g,
                    learned_spread_g=learned.spread_g,
                    standard_error_g=learned.standard_error_g,
                    samples=learned.samples,
                    inliers=learned.inliers,
                    confident=learned.confident,
                    why_not=learned.why_not,
                    disagreement_sigmas=comparison.disagreement_sigmas,
                    flags=tuple(flag.value for flag in comparison.flags),
                )
            )
    return sorted(rows, key=lambda r: (not _actionable(r), r.subject != Subject.SKU, r.key))


def _actionable(row: ReportRow) -> bool:
    return any(flag != "not_confident" for flag in row.flags)


def _catalog_figures(
    catalog: Catalog, subject: Subject, key: str
) -> tuple[str, float | None, float | None]:
    """Name, mean and spread as the catalog has them (None when it does not know the key)."""
    if subject is Subject.BOX:
        box = catalog.boxes.get(key)
        return (box.name, box.tare_g, box.tare_spread_g) if box else (key, None, None)
    item = catalog.items.get(key)
    if item is None:
        return key, None, None
    return item.name, item.unit_weight_g, item.weight_spread_g
