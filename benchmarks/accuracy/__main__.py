"""python -m benchmarks.accuracy [--smoke] [--seed N] [--vision-at-target] [--learned-weights N]
[--scan-mismatch recount|block] [--json PATH]"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.accuracy.evaluate import MIXES
from benchmarks.accuracy.report import measure, render, write
from benchmarks.accuracy.sensors import VisionModel
from benchmarks.accuracy.world import WorldModel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy",
        description="Catch and false-block rates of generated carton streams per channel mix.",
    )
    parser.add_argument("--smoke", action="store_true", help="small counts, for CI (seconds)")
    parser.add_argument("--seed", type=int, default=1, help="world and carton seed")
    counter = parser.add_mutually_exclusive_group()
    counter.add_argument(
        "--vision-at-target",
        action="store_true",
        help="what-if: the counter at its issue-4 target (~98%% exact) instead of as shipped",
    )
    counter.add_argument(
        "--vision-exact",
        action="store_true",
        help="what-if: a counter that never miscounts (what the other channels leave)",
    )
    parser.add_argument(
        "--learned-weights",
        type=int,
        default=0,
        metavar="N",
        help="what-if: every unit weight learned from N confirmed units (a site past shadow "
        "mode) instead of the catalog's, stale ones included",
    )
    parser.add_argument(
        "--scan-mismatch",
        choices=["recount", "block"],
        default="recount",
        help="what a station does with a scan count off the order that the sensors refute "
        "([policy] scan_mismatch_action; block: the rule before 2026-11-27)",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/accuracy.json"))
    args = parser.parse_args(argv)
    vision = VisionModel.from_card()
    if args.vision_at_target:
        vision = vision.at_target()
    elif args.vision_exact:
        vision = vision.scaled(0.0, f"{vision.name} x0 (exact)")
    model = WorldModel(learned_samples=args.learned_weights)
    recount = args.scan_mismatch == "recount"
    mixes = {name: replace(mix, recount_scan_slips=recount) for name, mix in MIXES.items()}
    document = measure(args.seed, args.smoke, vision, model, mixes)
    print(render(document))
    write(document, args.json)
    print(f"\nwritten to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
