"""Evidence chain benchmark: record write time with hashing, and chain verification speed.

    python -m benchmarks.evidence_bench [--smoke]
    (or as part of python -m benchmarks.run, through `run(smoke)`)

Figures (10,000 records; smoke: 1,000), on the disk under the system temp dir:
- record write: `EvidenceStore.record_attempt` of a realistic attempt (a 10-line manifest, the
  verdict with its channel reports, a 60-reading weight trace, 12 accepted and 20 rejected RFID
  EPCs, versions; about 9 kB of canonical JSON): canonical JSON, SHA-256 of the envelope and the
  WAL insert with synchronous=NORMAL. Per record, median and p99.
- of which hashing: `prepare_attempt` alone (canonical JSON + SHA-256), median and p99.
- verify: `verify_chain` over the whole file (every hash recomputed, every link and lookup column
  checked), records per second.

Baseline (2-core VM shared with other agents' test runs, ext4, Python 3.11, 2026-11-26):
see docs/evidence.md ("Figures").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.figures import Figure, summary
from station.domain import Manifest, ManifestLine
from station.evidence import EvidenceStore, open_readonly, verify_chain
from station.session import AttemptRecord, WeightInfo
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Outcome,
    Reason,
    SkuFinding,
    Verdict,
)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def _record(n: int) -> tuple[AttemptRecord, dict[str, object]]:
    skus = [f"SKU-{i:04d}" for i in range(10)]
    findings = tuple(SkuFinding(s, FindingStatus.CONFIRMED, 1, 1, 0.98, "1 of 1") for s in skus)
    reports = (
        ChannelReport(
            "weight", ChannelState.OK, measurements={"measured_g": 1834.5, "expected_g": 1830.0}
        ),
        ChannelReport("rfid", ChannelState.OK, findings, measurements={"reads": 412.0}),
    )
    verdict = Verdict(
        Outcome.PASS, (Reason("all_confirmed", "Every unit confirmed."),), (), (), reports
    )
    record = AttemptRecord(
        order_id=f"ORD-{n}",
        carton_id="C1",
        manifest_version=1,
        attempt=1,
        packer_badge="BADGE-42",
        box_code="BOX-M",
        closed_by="code",
        shipping_label=None,
        mode="enforce",
        verdict=verdict,
        scanned_units={s: 1 for s in skus},
        weight=WeightInfo(1834.5, 1830.0, 22.0),
        decided_at=T0 + timedelta(seconds=n),
    )
    manifest = Manifest(
        order_id=f"ORD-{n}",
        carton_id="C1",
        version=1,
        lines=tuple(ManifestLine(line_id=f"L{i}", sku=s, quantity=1) for i, s in enumerate(skus)),
    )
    tag = {"antennas": [1, 2], "peak_rssi_dbm": -48.5, "seen_count": 14, "units": 1}
    extra = {
        "manifest": manifest,
        "observations": {
            "weight": {
                "trace": [
                    {"t_s": round(i * 0.1 - 3, 3), "grams": 1834.5, "stable": True, "status": "ok"}
                    for i in range(60)
                ]
            },
            "rfid": {
                "accepted": [
                    {"epc": f"3034{n:012X}{i:08X}", "sku": skus[i % 10], **tag} for i in range(12)
                ],
                "rejected_epcs": {"rssi": [f"3034FFFF{n:08X}{i:08X}" for i in range(20)]},
                "rejected_reads": {"rssi": 80},
            },
        },
        "versions": {"software": "0.1.0", "config_sha256": "ab" * 32, "models": {}},
    }
    return record, extra


def run(smoke: bool) -> list[Figure]:
    count = 1_000 if smoke else 10_000
    records = [_record(n) for n in range(1, count + 1)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "evidence.sqlite3"
        store = EvidenceStore(path, "bench", "bench")
        hashing_ms, write_ms = [], []
        for record, extra in records:
            started = time.perf_counter()
            store.prepare_attempt(record, extra)
            hashed = time.perf_counter()
            store.record_attempt(record, extra)
            done = time.perf_counter()
            hashing_ms.append((hashed - started) * 1000)
            write_ms.append((done - hashed) * 1000)
        size = len(store.record(1).body)  # type: ignore[union-attr]
        store.close()
        db = open_readonly(path)
        started = time.perf_counter()
        check = verify_chain(db)
        seconds = time.perf_counter() - started
        db.close()
        assert check.ok and check.records == count, check
    write_median, write_p99 = summary(write_ms)
    hash_median, hash_p99 = summary(hashing_ms)
    rate = count / seconds
    note = f"{count:,} records of {size:,} bytes"
    return [
        Figure("evidence record write (hash + insert)", "ms", write_median, write_p99, note=note),
        Figure("evidence hashing alone (canonical JSON + SHA-256)", "ms", hash_median, hash_p99),
        Figure("evidence verify", "records/s", rate, note=f"{count:,} records in {seconds:.2f} s"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    for figure in run(args.smoke):
        p99 = f", p99 {figure.p99:.3f}" if figure.p99 is not None else ""
        print(f"{figure.name}: {figure.median:.3f} {figure.unit}{p99} {figure.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
