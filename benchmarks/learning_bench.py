"""Learned-weights benchmark: estimator speed and store insert latency.

    python -m benchmarks.learning_bench [--smoke]
    (or as part of python -m benchmarks.run, through `run(smoke)`)

Figures (informational; the budget is that a verdict's observer work stays well under a
millisecond and the weight check's lookup of learned weights costs nothing noticeable):
- estimate of one SKU from its 200 kept samples (the store's default bound), 10 % outliers.
- store insert: one sample with its bound enforced (INSERT OR REPLACE + DELETE of the oldest),
  WAL, synchronous=NORMAL, on the disk under the system temp dir.
- the weight check's effective weights for a 10-SKU carton in `use` mode with warm estimates.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.figures import Figure, summary
from station.clock import ManualClock
from station.domain import BoxType, Catalog, CatalogItem
from station.learning.estimator import LearningConfig, WeightSample, estimate
from station.learning.service import LearnedWeights
from station.learning.store import FILE_NAME, LearnedWeightStore, Subject
from station.weight_check import WeightCheckConfig


def _samples(count: int, seed: int) -> list[WeightSample]:
    rng = random.Random(seed)
    return [
        WeightSample(rng.gauss(400, 4) if rng.random() > 0.1 else rng.uniform(100, 900))
        for _ in range(count)
    ]


def run(smoke: bool = False) -> list[Figure]:
    config = LearningConfig()
    rounds = 200 if smoke else 5_000
    samples = _samples(config.max_samples, seed=1)
    estimator_ms = []
    for _ in range(rounds):
        start = time.perf_counter()
        estimate(samples, config)
        estimator_ms.append((time.perf_counter() - start) * 1000)

    inserts = 500 if smoke else 10_000
    insert_ms = []
    effective_ms = []
    with tempfile.TemporaryDirectory() as folder:
        store = LearnedWeightStore(Path(folder) / FILE_NAME, "bench", "st1", config.max_samples)
        now = datetime.now(UTC)
        for i, sample in enumerate(_samples(inserts, seed=2)):
            sku = f"SKU-{i % 50}"
            start = time.perf_counter()
            store.add(Subject.SKU, sku, sample, "pass", now, ref=f"ORD-{i}/C1")
            insert_ms.append((time.perf_counter() - start) * 1000)
        skus = [f"SKU-{i}" for i in range(10)]
        catalog = Catalog.from_lists(
            [CatalogItem(sku=s, name=s, unit_weight_g=400, weight_spread_g=4) for s in skus],
            [BoxType(code="BOX", name="box", tare_g=180, tare_spread_g=5)],
        )
        learned = LearnedWeights(
            config.model_copy(update={"mode": "use"}),
            catalog,
            WeightCheckConfig(),
            store,
            ManualClock(),
        )
        units = dict.fromkeys(skus, 2)
        learned.effective(units, catalog.boxes["BOX"])  # warm the estimate cache
        for _ in range(rounds):
            start = time.perf_counter()
            learned.effective(units, catalog.boxes["BOX"])
            effective_ms.append((time.perf_counter() - start) * 1000)
        store.close()
    figures = []
    for name, values in (
        (f"learned weights: estimate of one SKU from {config.max_samples} samples", estimator_ms),
        ("learned weights: store insert (bounded, WAL)", insert_ms),
        ("learned weights: effective weights for a 10-SKU carton (use)", effective_ms),
    ):
        median, p99 = summary(values)
        figures.append(Figure(name, "ms", median, p99))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    for figure in run(parser.parse_args().smoke):
        print(f"{figure.name}: median {figure.median:.3f} ms, p99 {figure.p99:.3f} ms")
