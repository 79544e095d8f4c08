"""Load soak in CI: 20 stations' traffic (real weight-only daemons on pty rigs) against one
mosquitto and one sink for about 3 minutes (40 s warm-up, 2 minutes measured). benchmarks/soak.py
runs it and computes the pass criteria from its samples: memory flat, no growing queue, every
committed event delivered exactly once after de-duplication with no sequence gap, the sink's
verdicts the station's own records, no short carton passed.

PACKSTATION_SOAK_MINUTES=30 pytest -m soak ... runs it longer (or `python -m benchmarks.soak
--minutes 30`, which prints the figures)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks.soak import SoakPlan, assess, run_soak

pytestmark = [pytest.mark.e2e, pytest.mark.soak]


def test_twenty_stations_keep_memory_flat_queues_short_and_every_event(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    plan = SoakPlan(minutes=float(os.environ.get("PACKSTATION_SOAK_MINUTES", SoakPlan().minutes)))
    result = run_soak(plan, tmp_path, log_dir=tmp_path / "logs")
    checks = assess(result)
    committed = sum(result.committed.values())
    unique = {sid: set(seqs) for sid, seqs in result.delivered.items()}
    missing = sum(
        len(set(range(1, n + 1)) - unique.get(sid, set())) for sid, n in result.committed.items()
    )
    figures.update(
        stations=plan.stations,
        minutes=round(result.elapsed_s / 60, 2),
        cartons=sum(len(s.cartons) for s in result.stations),
        held_by_weight_noise=sum(len(s.held) for s in result.stations),
        closes_refused_as_too_early=sum(s.closes_refused for s in result.stations),
        events_produced=committed,
        events_delivered=sum(len(seqs) for seqs in unique.values()),
        duplicates_removed=result.duplicates,
        gaps=missing,
        daemons_cpu_percent=round(result.daemons_cpu, 1),
        checks={
            c.name: {"value": round(c.value, 3), "bound": c.bound, "met": c.met} for c in checks
        },
    )
    failed = [f"{c.name}: {c.value:g} (bound {c.bound:g}) {c.detail}" for c in checks if not c.met]
    assert failed == [], "\n".join(failed)
