"""Typed tag reads: what every reader driver produces and the daemon consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TagReport:
    """One tag in one reply or report, as the protocol parser sees it (no host timing yet).

    `antenna` is 1-based; 0 when the reader does not say. `span_s` is last seen minus first seen
    by the reader's own clock when it reports both (LLRP), else 0.
    """

    epc: bytes
    antenna: int
    rssi_dbm: float | None
    seen_count: int = 1
    span_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TagRead:
    """A tag seen by `reader`: `seen_count` reads between `first_seen` and `last_seen`, which are
    on the station's monotonic clock (the same clock as the scale's readings)."""

    epc: bytes
    antenna: int
    rssi_dbm: float | None
    first_seen: float
    last_seen: float
    seen_count: int
    reader: str

    @property
    def epc_hex(self) -> str:
        return self.epc.hex().upper()

    @classmethod
    def from_report(cls, report: TagReport, reader: str, now: float) -> TagRead:
        return cls(
            epc=report.epc,
            antenna=report.antenna,
            rssi_dbm=report.rssi_dbm,
            first_seen=now - max(0.0, report.span_s),
            last_seen=now,
            seen_count=max(1, report.seen_count),
            reader=reader,
        )
