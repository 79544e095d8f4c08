"""One figure of a benchmark, and the statistics every benchmark reports the same way."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: str
    median: float
    p99: float | None = None
    target: str = ""  # e.g. "p99 <= 50 ms"; empty when the figure is informational
    met: bool | None = None  # None when there is no target
    ratio: float | None = None  # ratio to the baseline measured in the same run
    baseline: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); honest for small sample counts."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 99)
