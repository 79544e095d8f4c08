"""Evidence records as the daemon writes them, for the chain, CLI and retention tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from station.evidence import ChainRecord, EvidenceStore
from station.session import AttemptRecord, WeightInfo
from station.verification import (
    ChannelReport,
    ChannelState,
    LineDelta,
    Outcome,
    Reason,
    Verdict,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def attempt(
    n: int, outcome: Outcome = Outcome.PASS, at: datetime | None = None, order: str = ""
) -> AttemptRecord:
    short = (LineDelta("MUG-1", 1, ("30340242201D8840009A1B2C",)),)
    verdict = Verdict(
        outcome,
        (Reason("weight_ok", "Weight matches.", "weight"),),
        missing=short if outcome is Outcome.BLOCK else (),
        reports=(ChannelReport("weight", ChannelState.OK, measurements={"measured_g": 612.5 + n}),),
    )
    return AttemptRecord(
        order_id=order or f"ORD-{n}",
        carton_id="C1",
        manifest_version=1,
        attempt=1,
        packer_badge="BADGE-42",
        box_code="BOX-S",
        closed_by="code",
        shipping_label=None,
        mode="enforce",
        verdict=verdict,
        scanned_units={"MUG-1": 1},
        weight=WeightInfo(612.5 + n, 610.0, 15.0),
        decided_at=at or T0 + timedelta(seconds=n),
    )


def fill(path: Path, count: int, start: datetime = T0) -> list[ChainRecord]:
    """`count` records: mostly attempts, every fifth an audit entry (logins, releases)."""
    store = EvidenceStore(path, "pack-01", "dc-north")
    written = []
    for n in range(1, count + 1):
        at = start + timedelta(seconds=n)
        if n % 5 == 0:
            data = {"order_id": f"ORD-{n - 1}", "carton_id": "C1", "reviewer_badge": "SUP-1"}
            written.append(store.record_audit("carton.released", data, at))
        else:
            extra = {"observations": {"weight": {"trace": [{"t_s": -0.5, "grams": 611.0}]}}}
            written.append(store.record_attempt(attempt(n, at=at), extra))
    store.close()
    return written
