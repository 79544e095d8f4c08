"""`packstation weights report|export CONFIG`: learned against catalog weights, per station."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from station.clock import SystemClock
from station.learning.report import ReportRow, report_rows
from station.learning.store import FILE_NAME, LearnedWeightStore, UnknownItem


@dataclass(frozen=True, slots=True)
class _Loaded:
    rows: list[ReportRow]
    unknown: list[UnknownItem]
    site: str
    station: str


_COLUMNS = ("site", "station", *(f.name for f in dataclasses.fields(ReportRow)))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser(
        "weights", help="learned unit and box weights: report and export"
    )
    commands = weights.add_subparsers(title="weights commands", metavar="COMMAND")
    report = commands.add_parser(
        "report", help="table of learned against catalog weights, disagreements flagged"
    )
    report.add_argument("config", type=Path, help="station TOML file")
    report.set_defaults(func=_run_report)
    export = commands.add_parser("export", help="learned weights for the master-data team")
    export.add_argument("config", type=Path, help="station TOML file")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", type=Path, help="write here instead of standard output")
    export.set_defaults(func=_run_export)
    weights.set_defaults(func=lambda _args: weights.print_help() or 2)


def _run_report(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    print(f"learned weights at {loaded.site}/{loaded.station}")
    print(format_table(loaded.rows))
    if loaded.unknown:
        print("\nunknown items weighed (barcode, grams, packer, at):")
        for item in loaded.unknown:
            print(f"  {item.barcode}  {item.grams:.1f} g  {item.packer_badge or '-'}  {item.at}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    site, station = loaded.site, loaded.station
    records = [{"site": site, "station": station, **_plain(row)} for row in loaded.rows]
    if args.format == "json":
        document = {
            "format": "packstation-learned-weights/1",
            "site": site,
            "station": station,
            "weights": records,
            "unknown_items": [dataclasses.asdict(item) for item in loaded.unknown],
        }
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({**record, "flags": " ".join(record["flags"])})
        text = buffer.getvalue()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def _plain(row: ReportRow) -> dict[str, object]:
    record = dataclasses.asdict(row)
    record["subject"] = row.subject.value
    return record


def _load(config_path: Path) -> _Loaded | int:
    """The station's learned weights against its catalog, or an exit code."""
    from station.catalog_file import load_catalog
    from station.config_loader import ConfigError
    from station.daemon import load_station_config
    from station.learning.service import LearnedWeights

    try:
        config = load_station_config(config_path)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    path = config.station.data_dir / FILE_NAME
    if not path.exists():
        print(
            f"{path}: no learned weights yet (the station creates it when it runs)",
            file=sys.stderr,
        )
        return 1
    catalog = load_catalog(config.catalog.path)
    site, station = config.station.site, config.station.id
    store = LearnedWeightStore(path, site, station, config.learning.max_samples)
    try:
        learned = LearnedWeights(config.learning, catalog, config.weight, store, SystemClock())
        rows = report_rows(catalog, store.keys, learned.estimate, config.learning)
        unknown = list(store.unknown_items())
    finally:
        store.close()
    return _Loaded(rows, unknown, site, station)


def format_table(rows: list[ReportRow]) -> str:
    if not rows:
        return "(no samples yet)"
    header = ("", "key", "catalog g", "learned g", "n", "off by", "flags")
    lines = [header]
    for row in rows:
        catalog = (
            "-" if row.catalog_g is None else f"{row.catalog_g:.1f} ± {row.catalog_spread_g:.1f}"
        )
        sigmas = "-" if row.disagreement_sigmas is None else f"{row.disagreement_sigmas:+.1f}σ"
        flags = " ".join(row.flags) or "ok"
        if row.why_not:
            flags += f" ({row.why_not})"
        lines.append(
            (
                row.subject.value,
                row.key,
                catalog,
                f"{row.learned_g:.1f} ± {row.learned_spread_g:.1f}",
                f"{row.inliers}/{row.samples}",
                sigmas,
                flags,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )
