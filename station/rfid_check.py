"""The RFID channel's configuration and its report for one carton. Pure: no I/O but the site
table's CSV, read once at start.

A tag read proves a unit near the antennas; `rfid.window.filter_window` decides which reads of the
decisive window count as "in the carton". This module turns what it accepted into findings:

- an expected SKU whose catalog item is `rfid_tagged`: units proven by distinct accepted EPCs
  against the units expected -> CONFIRMED, MISSING (with the sure shortfall) or EXTRA; when tags
  already shipped could be the missing units, UNCERTAIN and a review reason (a ledger hit goes to
  REVIEW, never BLOCK);
- an expected SKU that is not tagged -> NOT_APPLICABLE;
- accepted tags of a SKU that is not expected -> EXTRA;
- accepted tags that map to no SKU, and denied tags -> review reasons (`ChannelReport.review`);
- a reader down, or silent, during the window -> the report is DOWN or STALE with no findings
  (fail closed: it confirms nothing, and a required RFID channel sends the carton to REVIEW).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rfid.config import ReadWindowConfig, RfidReaderConfig
from rfid.identity import EpcSkuTable
from rfid.window import WindowResult
from station.domain import Catalog
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Reason,
    SkuFinding,
)

CHANNEL = "rfid"
# Reads rejected for these reasons were near the antennas but not counted: shown as evidence
# when a unit of their SKU is missing ("its tag was read beside the box, below the floor").
_NEAR_MISS = ("below_rssi_floor", "too_few_reads", "wrong_antenna", "outside_window")
_MAX_EPCS_NAMED = 5


class RfidCheckConfig(BaseModel):
    """The `[rfid]` section: readers, the decisive window and how tags map to SKUs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    readers: list[RfidReaderConfig] = Field(
        min_length=1,
        description="The RFID readers under this station's platter (one supervisor thread each); "
        "their devices are named 'rfid <name>' in faults and status.",
    )
    window: ReadWindowConfig = Field(
        default_factory=ReadWindowConfig,
        description="Which reads of the decisive window count as in the carton: antennas under "
        "the carton with their RSSI floors, minimum seen count, EPC prefixes.",
    )
    window_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="The decisive window stays open this long after the close request; reads "
        "stamped in it count. Keep it below [verdict] settle_timeout_s (the window is cut there).",
    )
    lookback_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Reads this long before the close request count too (the carton already lay "
        "settled on the platter when the packer scanned CLOSE). Keep it short: reads taken while "
        "units were still going in (or coming out) must not count.",
    )
    epc_table: EpcSkuTable = Field(
        default_factory=EpcSkuTable,
        description="The site's EPC -> SKU table for tags without a GS1 encoding (exact EPCs and "
        "EPC prefixes); it wins over GS1 decoding.",
    )
    epc_table_csv: Path | None = Field(
        default=None,
        description="A CSV file with more site table rows (header 'match,epc,sku'; match is "
        "'exact' or 'prefix'). Relative to the config file.",
    )
    require_second_channel: bool = Field(
        default=False,
        description="A tagged SKU confirmed by RFID alone is not verified: another channel "
        "(weight, vision) must confirm it too, else the carton goes to REVIEW.",
    )
    confidence: float = Field(
        default=0.98,
        gt=0.5,
        le=1.0,
        description="Confidence of the channel's counts while every reader is healthy; compare "
        "[policy] min_confidence.",
    )
    buffer_reads: int = Field(
        default=50_000,
        ge=100,
        le=5_000_000,
        description="Most tag reads kept in memory (a rolling buffer; old reads drop out).",
    )
    deny_shipped: bool = Field(
        default=True,
        description="Keep a ledger of EPCs in cartons this station passed or released; such an "
        "EPC in a new carton sends it to REVIEW (a swapped or returned unit).",
    )
    share_with_site: bool = Field(
        default=True,
        description="Share with the site's other stations over MQTT: publish the EPCs of every "
        "carton this station ships (and learn theirs, and the WMS's returns, into the ledger), "
        "and announce the EPCs of the open carton (denied elsewhere as open_elsewhere).",
    )
    open_ttl_s: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="Another station's open-carton EPCs are forgotten after this long without "
        "news (a station that died with a carton open).",
    )
    ledger_retention_days: float = Field(
        default=365.0,
        gt=0,
        le=3650,
        description="Shipped EPCs older than this leave the ledger.",
    )

    @field_validator("readers")
    @classmethod
    def _distinct_names(cls, readers: list[RfidReaderConfig]) -> list[RfidReaderConfig]:
        names = [r.name for r in readers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two RFID readers are named {', '.join(dupes)}")
        return readers

    @model_validator(mode="after")
    def _window_antennas_read(self) -> RfidCheckConfig:
        inventoried = {a for reader in self.readers for a in reader.antennas}
        unread = sorted(w.antenna for w in self.window.antennas if w.antenna not in inventoried)
        if unread:
            raise ValueError(f"window antennas {unread} are not in any reader's antennas")
        return self

    def resolve_paths(self, base: Path) -> RfidCheckConfig:
        if self.epc_table_csv is None:
            return self
        return self.model_copy(update={"epc_table_csv": base / self.epc_table_csv})

    def site_table(self) -> EpcSkuTable:
        """The inline table merged with the CSV's rows (the CSV wins on a clash)."""
        if self.epc_table_csv is None:
            return self.epc_table
        exact, prefixes = dict(self.epc_table.exact), dict(self.epc_table.prefixes)
        with self.epc_table_csv.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                match, epc, sku = (row.get(k, "") or "" for k in ("match", "epc", "sku"))
                if match.strip() not in ("exact", "prefix"):
                    raise ValueError(
                        f"{self.epc_table_csv}:{line}: match must be 'exact' or 'prefix'"
                    )
                table = exact if match.strip() == "exact" else prefixes
                table[epc.strip().upper()] = sku.strip()
        return EpcSkuTable(exact=exact, prefixes=prefixes)


@dataclass(frozen=True, slots=True)
class ReaderProblem:
    """A reader that cannot vouch for this window: down (DOWN) or silent (STALE)."""

    reader: str
    state: ChannelState
    message: str


def rfid_report(
    expected_units: Mapping[str, int],
    catalog: Catalog,
    result: WindowResult,
    *,
    problems: Iterable[ReaderProblem] = (),
    sku_of: Callable[[str], str | None] = lambda _epc: None,
    confidence: float = 0.98,
) -> ChannelReport:
    """The RFID channel's report for one carton (module docstring). `sku_of` names the SKU of a
    rejected EPC, for the evidence of a missing unit."""
    measurements = _measurements(result)
    problems = tuple(problems)
    if problems:
        state = (
            ChannelState.DOWN
            if any(p.state is ChannelState.DOWN for p in problems)
            else ChannelState.STALE
        )
        reasons = tuple(Reason(f"rfid_{p.state.value}", p.message, CHANNEL) for p in problems)
        return ChannelReport(CHANNEL, state, reasons=reasons, measurements=measurements)

    units = result.units_by_sku()
    epcs = result.epcs_by_sku()
    denied_units: Counter[str] = Counter()
    denied_epcs: dict[str, list[str]] = {}
    for denied in result.denied:
        if denied.tag.sku is not None:
            denied_units[denied.tag.sku] += denied.tag.units
            denied_epcs.setdefault(denied.tag.sku, []).append(denied.tag.epc)
    near = _near_misses(result, sku_of)

    findings: list[SkuFinding] = []
    for sku, expected in sorted(expected_units.items()):
        if expected <= 0:
            continue
        item = catalog.items.get(sku)
        if item is None or not item.rfid_tagged:
            detail = "not RFID-tagged: the readers cannot count it"
            findings.append(
                SkuFinding(sku, FindingStatus.NOT_APPLICABLE, expected, None, 1.0, detail)
            )
            continue
        findings.append(
            _tagged_finding(
                sku,
                expected,
                units.get(sku, 0),
                epcs.get(sku, ()),
                denied_units[sku],
                near.get(sku, ()),
                confidence,
            )
        )
    for sku in sorted(set(units) - {s for s, n in expected_units.items() if n > 0}):
        detail = f"{units[sku]} x {sku} in the carton, not in the order: {_epcs(epcs[sku])}"
        findings.append(
            SkuFinding(
                sku, FindingStatus.EXTRA, 0, units[sku], confidence, detail, tuple(epcs[sku])
            )
        )

    review = [
        Reason(
            "rfid_unknown_tag",
            f"Tag {tag.epc} is in the carton but stands for no catalog item "
            f"({tag.identity.problem or 'unknown EPC'}): check what it is.",
            CHANNEL,
        )
        for tag in result.unknown
    ]
    for denied in result.denied:
        what = f"{denied.tag.sku} " if denied.tag.sku else ""
        if denied.denial == "shipped":
            message = (
                f"Tag {denied.tag.epc} ({what}in the carton) was already shipped from this "
                "site: a returned or swapped unit? Check it."
            )
        else:
            message = f"Tag {denied.tag.epc} ({what}in the carton) is open at another station."
        review.append(Reason(f"rfid_tag_{denied.denial}", message, CHANNEL, denied.tag.sku))
    return ChannelReport(
        CHANNEL,
        ChannelState.OK,
        tuple(findings),
        measurements=measurements,
        review=tuple(review),
    )


def _tagged_finding(
    sku: str,
    expected: int,
    proven: int,
    epcs: tuple[str, ...],
    denied: int,
    near: tuple[str, ...],
    confidence: float,
) -> SkuFinding:
    read = f"{proven} of {expected} read in the carton"
    if epcs:
        read += f" ({_epcs(epcs)})"
    if proven == expected:
        return SkuFinding(sku, FindingStatus.CONFIRMED, expected, proven, confidence, read)
    if proven > expected:
        # Which of the tags are the extra ones cannot be told: all of the SKU's are evidence.
        return SkuFinding(sku, FindingStatus.EXTRA, expected, proven, confidence, read, epcs)
    if proven + denied >= expected:
        detail = f"{read}; {denied} more tag(s) of {sku} were already shipped"
        return SkuFinding(sku, FindingStatus.UNCERTAIN, expected, None, confidence, detail)
    observed = proven + denied
    detail = f"{sku}: {expected - observed} of {expected} missing by RFID, {read}"
    if near:
        detail += f"; read near the carton but not in it: {_epcs(near)}"
    return SkuFinding(
        sku, FindingStatus.MISSING, expected, observed, confidence, detail, tuple(near)
    )


def _near_misses(
    result: WindowResult, sku_of: Callable[[str], str | None]
) -> dict[str, tuple[str, ...]]:
    """SKU -> EPCs read in the window but rejected (beside the box, in the hand, too rarely)."""
    counted = {t.epc for tags in result.accepted_by_sku.values() for t in tags}
    counted |= {d.tag.epc for d in result.denied} | {t.epc for t in result.unknown}
    found: dict[str, set[str]] = {}
    for reason in _NEAR_MISS:
        for epc in result.rejected_epcs.get(reason, frozenset()):  # type: ignore[call-overload]
            sku = sku_of(epc) if epc not in counted else None
            if sku is not None:
                found.setdefault(sku, set()).add(epc)
    return {sku: tuple(sorted(epcs)) for sku, epcs in found.items()}


def _epcs(epcs: Iterable[str]) -> str:
    epcs = list(epcs)
    named = ", ".join(epcs[:_MAX_EPCS_NAMED])
    more = len(epcs) - _MAX_EPCS_NAMED
    return f"EPC {named}" + (f" and {more} more" if more > 0 else "")


def _measurements(result: WindowResult) -> dict[str, float]:
    measurements = {
        "reads": float(result.total_reads),
        "reads_accepted": float(result.accepted_reads),
        "tags_accepted": float(sum(len(tags) for tags in result.accepted_by_sku.values())),
        "tags_unknown": float(len(result.unknown)),
        "tags_denied": float(len(result.denied)),
    }
    for reason, count in result.rejected_reads.items():
        measurements[f"rejected_{reason}"] = float(count)
    return measurements
