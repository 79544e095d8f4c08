"""`packstation evidence verify` and `packstation evidence show ID`: the evidence chain for an
operator or an auditor, read-only (safe while the daemon runs; WAL lets readers in)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

from station.evidence import (
    ChainRecord,
    checkpoint,
    image_refs,
    open_readonly,
    read_record,
    verify_chain,
)

EVIDENCE_FILE = "evidence.sqlite3"
EXIT_BROKEN = 2


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    evidence = subparsers.add_parser("evidence", help="check or show the evidence chain")
    commands = evidence.add_subparsers(title="evidence commands", metavar="ACTION", required=True)
    verify = commands.add_parser(
        "verify", help="recompute every hash and link; exit 2 at the first broken link"
    )
    _add_location(verify)
    verify.set_defaults(func=run_verify)
    show = commands.add_parser("show", help="print one record")
    show.add_argument("id", type=int, help="the record's chain position (record_id)")
    show.add_argument("--json", action="store_true", help="the stored record as JSON")
    _add_location(show)
    show.set_defaults(func=run_show)


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, nargs="?", help="station TOML file (its data_dir)")
    parser.add_argument("--data-dir", type=Path, help="the station's data_dir instead of a config")


def evidence_path(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return args.data_dir / EVIDENCE_FILE
    if args.config is None:
        raise SystemExit("give the station's config file or --data-dir")
    from station.daemon import load_station_config

    return load_station_config(args.config).station.data_dir / EVIDENCE_FILE


def _open(args: argparse.Namespace) -> sqlite3.Connection:
    try:
        return open_readonly(evidence_path(args))
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None


def _damaged(args: argparse.Namespace, exc: sqlite3.Error) -> int:
    print(
        f"evidence file {evidence_path(args)} is damaged or not an evidence file ({exc}); keep "
        "it as it is for a dispute, and restore the station's copy from a backup",
        file=sys.stderr,
    )
    return EXIT_BROKEN


def run_verify(args: argparse.Namespace) -> int:
    db = _open(args)
    started = time.perf_counter()
    try:
        check = verify_chain(db)
        pruned = checkpoint(db)
    except sqlite3.DatabaseError as exc:
        return _damaged(args, exc)
    finally:
        db.close()
    seconds = time.perf_counter() - started
    start = f"after checkpoint {pruned.through_seq}" if pruned else "from genesis"
    span = f"records {check.first_seq}..{check.last_seq}" if check.records else "no records"
    if check.ok:
        print(f"evidence chain OK: {check.records} {span} ({start}) in {seconds:.2f} s")
        print(f"head sha256 {check.head_sha256}")
        return 0
    print(f"evidence chain BROKEN at record {check.broken_seq}: {check.problem}", file=sys.stderr)
    print(f"{check.records} records before it were intact ({start})", file=sys.stderr)
    return EXIT_BROKEN


def run_show(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        record = read_record(db, args.id)
    except sqlite3.DatabaseError as exc:
        return _damaged(args, exc)
    finally:
        db.close()
    if record is None:
        print(f"no evidence record {args.id} (pruned, or not written yet)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record.plain(), indent=2, ensure_ascii=False))
    else:
        print(summary(record))
    return 0


def summary(record: ChainRecord) -> str:
    """A reviewer's reading of one record: who, what, the verdict and why, what was seen."""
    lines = [
        f"record {record.seq}  {record.kind}  at {record.at}",
        f"  sha256 {record.sha256}",
        f"  prev   {record.prev_sha256}",
    ]
    body = record.parsed_body()
    if body is None:  # `evidence verify` says where the chain breaks
        lines.append(f"  DAMAGED: the stored body is not a JSON object: {record.body[:200]!r}")
        return "\n".join(lines)
    if record.kind != "attempt":
        lines += [f"  {key}: {value}" for key, value in sorted(body.items())]
        return "\n".join(lines)
    verdict = body.get("verdict", {})
    lines += [
        f"  order {body.get('order_id')} carton {body.get('carton_id')}"
        f" (manifest v{body.get('manifest_version')}), attempt {body.get('attempt')}",
        f"  packer {body.get('packer_badge')}, box {body.get('box_code')},"
        f" closed by {body.get('closed_by')}, mode {body.get('mode')}",
        f"  verdict {verdict.get('outcome')}",
    ]
    lines += [f"    - {r.get('code')}: {r.get('message')}" for r in verdict.get("reasons", ())]
    for kind in ("missing", "extra"):
        for line in verdict.get(kind, ()):
            lines.append(f"    {kind}: {line.get('quantity')} x {line.get('sku')}")
    weight = body.get("weight") or {}
    if weight:
        lines.append(
            f"  weight measured {weight.get('measured_g')} g, expected {weight.get('expected_g')}"
            f" g ± {weight.get('tolerance_g')} g"
        )
    observed = body.get("observations", {})
    trace = observed.get("weight", {}).get("trace", [])
    if trace:
        lines.append(f"  weight trace: {len(trace)} readings around the close")
    rfid = observed.get("rfid")
    if rfid:
        accepted = ", ".join(t["epc"] for t in rfid.get("accepted", ())) or "none"
        rejected = sum(len(epcs) for epcs in rfid.get("rejected_epcs", {}).values())
        lines.append(f"  rfid accepted: {accepted}; rejected EPCs: {rejected}")
    images = image_refs(body)
    if images:
        lines.append(f"  images: {', '.join(images)}")
    versions = body.get("versions", {})
    if versions:
        lines.append(
            f"  software {versions.get('software')}, config sha256 "
            f"{str(versions.get('config_sha256'))[:12]}..., models {versions.get('models') or '-'}"
        )
    return "\n".join(lines)
