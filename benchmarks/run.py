"""Run every benchmark, print a table and write JSON.

python -m benchmarks.run            # full figures (minutes)
python -m benchmarks.run --smoke    # small counts, seconds: CI runs this so nothing rots
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.figures import Figure
from benchmarks.station_process import cpu_model, load_average

# Each module has `run(smoke: bool) -> list[Figure]`.
BENCHMARKS = (
    "benchmarks.verdict_bench",
    "benchmarks.outbox_bench",
    "benchmarks.memory_bench",
    "benchmarks.vision_bench",
    "benchmarks.rfid_bench",
    "benchmarks.learning_bench",
    "benchmarks.evidence_bench",
    "benchmarks.accuracy",
    "benchmarks.actuator_bench",
    "benchmarks.session_bench",
    "benchmarks.stations_bench",  # last: minutes in the full run
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small counts, for CI")
    parser.add_argument("--only", help="run only benchmarks whose module name contains this")
    parser.add_argument("--json", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    for name in BENCHMARKS:
        if args.only and args.only not in name:
            continue
        print(f"# {name} ...", file=sys.stderr, flush=True)
        figures += importlib.import_module(name).run(smoke=args.smoke)
    print(render_table(figures))
    print(f"machine: {len(os.sched_getaffinity(0))} x {cpu_model()}; load average {load_average()}")
    write_json(args.json, figures, args.smoke)
    missed = [f.name for f in figures if f.met is False]
    if missed and not args.smoke:
        print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
    return 0


def render_table(figures: list[Figure]) -> str:
    rows = [("figure", "median", "p99", "unit", "target", "ratio", "met")]
    for f in figures:
        rows.append(
            (
                f.name,
                _number(f.median),
                "" if f.p99 is None else _number(f.p99),
                f.unit,
                f.target,
                "" if f.ratio is None else f"{f.ratio:.2f} vs {f.baseline}",
                {True: "yes", False: "NO", None: ""}[f.met],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _number(value: float) -> str:
    """Three significant digits, without scientific notation for rates in the thousands."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def write_json(path: Path, figures: list[Figure], smoke: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model(),
            "load_average_at_end": load_average(),
            "python": platform.python_version(),
            "arch": platform.machine(),
        },
        "smoke": smoke,
        "figures": [f.as_dict() for f in figures],
    }
    path.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    sys.exit(main())
