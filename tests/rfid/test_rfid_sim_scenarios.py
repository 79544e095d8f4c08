"""The reader simulator's scenario features against the decisive-window rules: a passing cart,
duplicate tags, dropped reads and a tag read only sometimes. The field is inventoried round by
round on a manual clock; each report becomes a read stamped at that moment, as a driver does."""

from __future__ import annotations

from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.identity import EpcSkuResolver
from rfid.reads import TagRead
from rfid.window import WindowResult, filter_window
from simulators.rfid_sim import SimTag, TagField, carton_tags, duplicate_tags, sgtin_for_gtin
from simulators.rig import EXAMPLE_CATALOG
from station.catalog_file import load_catalog
from station.rfid_check import rfid_report
from station.verification import FindingStatus

CATALOG = load_catalog(EXAMPLE_CATALOG)
RESOLVER = EpcSkuResolver.from_catalog(CATALOG)
EAR, PHONES = "EAR-SILVER", "HEADPHONES-X1"
WINDOW = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-55),), min_seen_count=3
)
ROUND_S = 0.1


def tag(sku: str, serial: int) -> bytes:
    return sgtin_for_gtin(CATALOG.items[sku].barcodes[0].code, serial)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(field: TagField, clock: Clock, seconds: float) -> list[TagRead]:
    reads = []
    for _ in range(round(seconds / ROUND_S)):
        clock.now += ROUND_S
        reads += [TagRead.from_report(r, "sim", clock.now) for r in field.inventory()]
    return reads


def window(reads: list[TagRead], opened: float, closes: float) -> WindowResult:
    return filter_window(reads, WINDOW, RESOLVER, window=(opened, closes))


def test_a_passing_cart_before_the_decisive_window_is_not_counted() -> None:
    clock = Clock()
    field = TagField(carton_tags([tag(EAR, 1)]), seed=1, clock=clock)
    cart = [tag(PHONES, 100 + i) for i in range(30)]
    field.pass_cart(cart, duration_s=0.5, rssi_dbm=-38)  # stronger than the carton's own tags
    reads = run(field, clock, 2.0)
    opened = clock.now
    reads += run(field, clock, 1.0)
    assert {r.epc for r in reads} >= set(cart)  # the burst was read, strongly
    result = window(reads, opened, clock.now)
    assert result.units_by_sku() == {EAR: 1}
    assert result.rejected_reads["outside_window"] > 0
    assert {e.upper() for e in (c.hex() for c in cart)} <= result.rejected_epcs["outside_window"]
    assert len(field.tags()) == 1  # the cart has gone


def test_a_cart_passing_during_the_window_is_an_extra_not_silently_counted() -> None:
    clock = Clock()
    field = TagField(carton_tags([tag(EAR, 1)]), seed=2, clock=clock)
    opened = clock.now
    field.pass_cart([tag(PHONES, 7)], duration_s=0.5, rssi_dbm=-38)
    result = window(run(field, clock, 1.0), opened, clock.now)
    report = rfid_report({EAR: 1}, CATALOG, result)
    extra = report.finding_for(PHONES)
    assert extra is not None and extra.status is FindingStatus.EXTRA  # a person must look
    assert extra.evidence == (tag(PHONES, 7).hex().upper(),)


def test_two_units_with_one_epc_count_once_and_the_sku_is_flagged_short() -> None:
    clock = Clock()
    epc = tag(EAR, 5)
    field = TagField(duplicate_tags(epc, units=2), seed=3, clock=clock)
    result = window(run(field, clock, 1.0), 0.0, clock.now)
    assert result.units_by_sku() == {EAR: 1}
    assert result.epcs_by_sku() == {EAR: (epc.hex().upper(),)}
    finding = rfid_report({EAR: 2}, CATALOG, result).finding_for(EAR)
    assert finding is not None and finding.status is FindingStatus.MISSING
    assert epc.hex().upper() in finding.detail  # the one EPC read is named for the reviewer


def test_dropped_reads_still_count_a_tag_seen_enough() -> None:
    clock = Clock()
    epcs = [tag(EAR, 10 + i) for i in range(5)]
    field = TagField(carton_tags(epcs), seed=4, drop_rate=0.4, clock=clock)
    reads = run(field, clock, 1.0)
    assert len(reads) < 5 * 10 * 0.8  # reports were lost
    result = window(reads, 0.0, clock.now)
    assert result.units_by_sku() == {EAR: 5}


def test_a_tag_read_only_sometimes_counts_once_seen_min_times_and_not_before() -> None:
    clock = Clock()
    shy = tag(EAR, 20)
    field = TagField([SimTag(shy, 1, -45.0, 2.0, read_rate=0.3)], seed=5, clock=clock)
    reads = run(field, clock, 3.0)  # ~9 of 30 rounds
    assert 3 <= sum(r.seen_count for r in reads) < 30
    assert window(reads, 0.0, clock.now).units_by_sku() == {EAR: 1}
    # In a window too short to see it min_seen_count times it does not count.
    first = min(r.first_seen for r in reads)
    result = window(reads, first - 0.01, first + 0.01)
    assert result.units_by_sku() == {}
    assert result.rejected_reads.get("too_few_reads", 0) >= 1
