"""In the carton, not just in the field: which tag reads of the decisive window count.

A read proves a tag was near an antenna, not inside the carton. The daemon collects the reads of
a defined moment (carton on the platter, settled, close requested) and calls `filter_window`:

per read, in this order (the first failing check names the reason):
  outside_window    read before the window opened or after it closed
  prefix_filtered   EPC not under one of the site's prefixes (when any are configured)
  wrong_antenna     an antenna that is not under the carton
  no_rssi           no RSSI while `require_rssi` (it cannot be checked against the floor)
  below_rssi_floor  weaker than the antenna's floor
per EPC, over its reads that passed:
  too_few_reads     seen fewer than `min_seen_count` times in the window
  denied_shipped / denied_open_elsewhere
                    on a deny list: reported in `denied` (a ledger hit is for REVIEW, not
                    silently dropped)
What is left is accepted, grouped by SKU; accepted tags with no SKU are `unknown` (an extra item
the policy must see). Every read lands in exactly one place, so the counts add up.

Pure: no clock, no I/O; the same reads give the same result in any order.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from rfid.config import ReadWindowConfig
from rfid.identity import EpcIdentity, EpcSkuResolver
from rfid.reads import TagRead

RejectReason = Literal[
    "outside_window",
    "prefix_filtered",
    "wrong_antenna",
    "no_rssi",
    "below_rssi_floor",
    "too_few_reads",
    "denied_shipped",
    "denied_open_elsewhere",
]
REJECT_REASONS: tuple[RejectReason, ...] = (
    "outside_window",
    "prefix_filtered",
    "wrong_antenna",
    "no_rssi",
    "below_rssi_floor",
    "too_few_reads",
    "denied_shipped",
    "denied_open_elsewhere",
)
Denial = Literal["shipped", "open_elsewhere"]


@dataclass(frozen=True, slots=True)
class AcceptedTag:
    """One EPC that counts as in the carton, with the evidence for it."""

    epc: str
    identity: EpcIdentity
    antennas: tuple[int, ...]
    peak_rssi_dbm: float | None
    seen_count: int
    first_seen: float
    last_seen: float

    @property
    def sku(self) -> str | None:
        return self.identity.sku

    @property
    def units(self) -> int:
        return self.identity.units


@dataclass(frozen=True, slots=True)
class DeniedTag:
    tag: AcceptedTag  # it passed every read check: it is in the carton
    denial: Denial


@dataclass(frozen=True, slots=True)
class RssiHistogram:
    """Reads per RSSI bin on one antenna (all reads in the window, accepted or not)."""

    antenna: int
    bin_db: float
    bins: dict[float, int]  # lower edge (dBm) -> reads
    no_rssi: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "antenna": self.antenna,
            "bin_db": self.bin_db,
            "bins": {f"{edge:g}": count for edge, count in sorted(self.bins.items())},
            "no_rssi": self.no_rssi,
        }


@dataclass(frozen=True, slots=True)
class WindowResult:
    accepted_by_sku: dict[str, tuple[AcceptedTag, ...]]
    unknown: tuple[AcceptedTag, ...]
    denied: tuple[DeniedTag, ...]
    rejected_reads: dict[RejectReason, int]
    rejected_epcs: dict[RejectReason, frozenset[str]]
    histograms: tuple[RssiHistogram, ...]
    total_reads: int
    accepted_reads: int = 0

    def units_by_sku(self) -> dict[str, int]:
        """Units proven per SKU (a case-level SGTIN proves its barcode's units)."""
        return {sku: sum(t.units for t in tags) for sku, tags in self.accepted_by_sku.items()}

    def epcs_by_sku(self) -> dict[str, tuple[str, ...]]:
        return {sku: tuple(t.epc for t in tags) for sku, tags in self.accepted_by_sku.items()}


def filter_window(
    reads: Iterable[TagRead],
    config: ReadWindowConfig,
    resolve: EpcSkuResolver | Callable[[bytes], EpcIdentity],
    *,
    deny: Mapping[str, Denial] | None = None,
    window: tuple[float, float] | None = None,
) -> WindowResult:
    """Apply the read-window rules (module docstring) to the reads of one decisive window.

    `deny` maps upper-case EPC hex to why it may not count; `window` is (opened, closed) on the
    reads' monotonic clock (None: the caller already cut the reads to the window).
    """
    resolve_fn = resolve.resolve if isinstance(resolve, EpcSkuResolver) else resolve
    deny = deny or {}
    rejected: Counter[RejectReason] = Counter()
    rejected_epcs: dict[RejectReason, set[str]] = defaultdict(set)
    histogram_bins: dict[int, Counter[float]] = defaultdict(Counter)
    histogram_none: Counter[int] = Counter()
    passing: dict[str, list[TagRead]] = defaultdict(list)
    total = 0
    for read in reads:
        total += 1
        epc = read.epc_hex
        _histogram(read, config.rssi_bin_db, histogram_bins, histogram_none)
        reason = _read_reason(read, epc, config, window)
        if reason is None:
            passing[epc].append(read)
        else:
            rejected[reason] += 1
            rejected_epcs[reason].add(epc)

    accepted: dict[str, list[AcceptedTag]] = defaultdict(list)
    unknown: list[AcceptedTag] = []
    denied: list[DeniedTag] = []
    accepted_reads = 0
    for epc in sorted(passing):
        epc_reads = passing[epc]
        seen = sum(r.seen_count for r in epc_reads)
        if seen < config.min_seen_count:
            rejected["too_few_reads"] += len(epc_reads)
            rejected_epcs["too_few_reads"].add(epc)
            continue
        tag = _accepted(epc, epc_reads, seen, resolve_fn)
        denial = deny.get(epc)
        if denial is not None:
            reason: RejectReason = (
                "denied_shipped" if denial == "shipped" else "denied_open_elsewhere"
            )
            rejected[reason] += len(epc_reads)
            rejected_epcs[reason].add(epc)
            denied.append(DeniedTag(tag, denial))
            continue
        accepted_reads += len(epc_reads)
        if tag.sku is None:
            unknown.append(tag)
        else:
            accepted[tag.sku].append(tag)

    histograms = tuple(
        RssiHistogram(
            antenna,
            config.rssi_bin_db,
            dict(sorted(histogram_bins[antenna].items())),
            histogram_none[antenna],
        )
        for antenna in sorted(set(histogram_bins) | set(histogram_none))
    )
    return WindowResult(
        accepted_by_sku={sku: tuple(tags) for sku, tags in sorted(accepted.items())},
        unknown=tuple(unknown),
        denied=tuple(denied),
        rejected_reads={reason: rejected[reason] for reason in REJECT_REASONS if rejected[reason]},
        rejected_epcs={reason: frozenset(epcs) for reason, epcs in rejected_epcs.items()},
        histograms=histograms,
        total_reads=total,
        accepted_reads=accepted_reads,
    )


def _read_reason(
    read: TagRead, epc: str, config: ReadWindowConfig, window: tuple[float, float] | None
) -> RejectReason | None:
    if window is not None and (read.last_seen < window[0] or read.first_seen > window[1]):
        return "outside_window"
    if config.epc_prefixes and not epc.startswith(config.epc_prefixes):
        return "prefix_filtered"
    floor = config.floor_for(read.antenna)
    if floor is None:
        return "wrong_antenna"
    if read.rssi_dbm is None or not math.isfinite(read.rssi_dbm):
        return "no_rssi" if config.require_rssi else None
    if read.rssi_dbm < floor:
        return "below_rssi_floor"
    return None


def _accepted(
    epc: str, reads: list[TagRead], seen: int, resolve: Callable[[bytes], EpcIdentity]
) -> AcceptedTag:
    rssis = [r.rssi_dbm for r in reads if r.rssi_dbm is not None]
    return AcceptedTag(
        epc=epc,
        identity=resolve(reads[0].epc),
        antennas=tuple(sorted({r.antenna for r in reads})),
        peak_rssi_dbm=max(rssis) if rssis else None,
        seen_count=seen,
        first_seen=min(r.first_seen for r in reads),
        last_seen=max(r.last_seen for r in reads),
    )


def _histogram(
    read: TagRead,
    bin_db: float,
    bins: dict[int, Counter[float]],
    no_rssi: Counter[int],
) -> None:
    if read.rssi_dbm is None or not math.isfinite(read.rssi_dbm):
        no_rssi[read.antenna] += 1
    else:
        bins[read.antenna][math.floor(read.rssi_dbm / bin_db) * bin_db] += 1
