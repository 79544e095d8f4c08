"""The decisive read window: examples for each rule and properties over random read sets."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.epc import encode_sgtin96
from rfid.identity import EpcSkuResolver, EpcSkuTable
from rfid.reads import TagRead
from rfid.window import REJECT_REASONS, filter_window

SHIRT = [encode_sgtin96(1, "0614141", "812345", n) for n in range(1, 6)]
SOCKS_CASE = encode_sgtin96(2, "0614141", "012345", 1)
NEIGHBOUR = encode_sgtin96(1, "0614141", "812345", 999)
PRIVATE = bytes.fromhex("E28068940000400A9D22A9EB")
UNKNOWN = encode_sgtin96(1, "0614141", "812399", 1)
RESOLVER = EpcSkuResolver(
    {"80614141123458": ("SHIRT-M", 1), "00614141123452": ("SOCKS", 6)},
    EpcSkuTable(prefixes={"E2806894": "LABEL"}),
)
CONFIG = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-60), AntennaWindow(antenna=2)),
    min_seen_count=3,
)


def read(epc: bytes, rssi: float | None = -45, antenna: int = 1, count: int = 5, at: float = 10.0):
    return TagRead(epc, antenna, rssi, at, at + 0.5, count, "r1")


def test_carton_reads_are_grouped_by_sku_with_units_and_evidence():
    reads = [read(e) for e in SHIRT[:3]] + [read(SOCKS_CASE, -50, 2), read(PRIVATE, -40)]
    reads += [read(SHIRT[0], -41, 2, 2)]  # the same tag on the second antenna adds up
    result = filter_window(reads, CONFIG, RESOLVER)
    assert result.units_by_sku() == {"LABEL": 1, "SHIRT-M": 3, "SOCKS": 6}
    first = result.accepted_by_sku["SHIRT-M"][0]
    assert (first.antennas, first.peak_rssi_dbm, first.seen_count) == ((1, 2), -41, 7)
    assert result.rejected_reads == {} and result.accepted_reads == len(reads)


def test_each_rule_rejects_and_counts_by_reason():
    config = CONFIG.model_copy(update={"epc_prefixes": ("30",)})
    reads = [
        read(SHIRT[0], at=1.0),  # before the window
        read(PRIVATE),  # not under the site prefix 30
        read(SHIRT[1], antenna=3),  # antenna not under the carton
        read(SHIRT[2], rssi=None),
        read(NEIGHBOUR, rssi=-72),  # the neighbour's tag, weak
        read(SHIRT[3], count=2),  # read only twice
        read(SHIRT[4]),  # shipped already
        read(SOCKS_CASE),  # open at another station
        read(UNKNOWN),  # in the carton, no SKU
    ]
    deny = {SHIRT[4].hex().upper(): "shipped", SOCKS_CASE.hex().upper(): "open_elsewhere"}
    result = filter_window(reads, config, RESOLVER, deny=deny, window=(5.0, 20.0))
    assert result.rejected_reads == {
        "outside_window": 1,
        "prefix_filtered": 1,
        "wrong_antenna": 1,
        "no_rssi": 1,
        "below_rssi_floor": 1,
        "too_few_reads": 1,
        "denied_shipped": 1,
        "denied_open_elsewhere": 1,
    }
    assert result.accepted_by_sku == {}
    assert [t.epc for t in result.unknown] == [UNKNOWN.hex().upper()]
    assert "not a barcode" in (result.unknown[0].identity.problem or "")
    assert {(d.tag.sku, d.denial) for d in result.denied} == {
        ("SHIRT-M", "shipped"),
        ("SOCKS", "open_elsewhere"),
    }


def test_unit_beside_the_box_read_during_packing_but_not_in_the_window_does_not_count():
    packing = [read(SHIRT[0], -40, at=t) for t in (1.0, 2.0, 3.0)]  # in the packer's hand
    decisive = [read(e, at=10.0) for e in SHIRT[1:3]]
    result = filter_window(packing + decisive, CONFIG, RESOLVER, window=(9.0, 11.0))
    assert result.units_by_sku() == {"SHIRT-M": 2}
    assert result.rejected_epcs["outside_window"] == {SHIRT[0].hex().upper()}


def test_no_rssi_reads_can_count_when_allowed_and_histograms_log_every_read():
    config = CONFIG.model_copy(update={"require_rssi": False})
    reads = [read(SHIRT[0], rssi=None), read(SHIRT[1], -45.5), read(SHIRT[2], -61, 2)]
    result = filter_window(reads, config, RESOLVER)
    assert result.units_by_sku() == {"SHIRT-M": 2}
    ant1, ant2 = result.histograms
    assert (ant1.antenna, ant1.bins, ant1.no_rssi) == (1, {-46.0: 1}, 1)
    assert ant2.as_dict() == {"antenna": 2, "bin_db": 2.0, "bins": {"-62": 1}, "no_rssi": 0}


# --- properties --------------------------------------------------------------------------------

EPCS = [*SHIRT, SOCKS_CASE, NEIGHBOUR, PRIVATE, UNKNOWN]
reads_strategy = st.lists(
    st.builds(
        read,
        st.sampled_from(EPCS),
        st.one_of(st.none(), st.floats(-95, -20, allow_nan=False)),
        st.integers(1, 3),
        st.integers(1, 6),
        st.floats(0, 30, allow_nan=False),
    ),
    max_size=60,
)
deny_strategy = st.dictionaries(
    st.sampled_from([e.hex().upper() for e in EPCS]), st.sampled_from(["shipped", "open_elsewhere"])
)


def accepted_epcs(result) -> set[str]:
    return {t.epc for tags in result.accepted_by_sku.values() for t in tags} | {
        t.epc for t in result.unknown
    }


@settings(max_examples=300, deadline=None)
@given(reads=reads_strategy, deny=deny_strategy, seed=st.integers())
def test_every_read_lands_once_and_order_does_not_matter(reads, deny, seed):
    result = filter_window(reads, CONFIG, RESOLVER, deny=deny, window=(5.0, 25.0))
    assert result.accepted_reads + sum(result.rejected_reads.values()) == len(reads)
    assert set(result.rejected_reads) <= set(REJECT_REASONS)
    assert sum(sum(h.bins.values()) + h.no_rssi for h in result.histograms) == len(reads)
    shuffled = list(reads)
    random.Random(seed).shuffle(shuffled)
    assert filter_window(shuffled, CONFIG, RESOLVER, deny=deny, window=(5.0, 25.0)) == result
    assert accepted_epcs(result).isdisjoint(deny)
    for tags in result.accepted_by_sku.values():
        for tag in tags:
            assert tag.seen_count >= CONFIG.min_seen_count
            assert tag.peak_rssi_dbm is not None and tag.peak_rssi_dbm >= -60


@settings(max_examples=300, deadline=None)
@given(
    reads=reads_strategy,
    deny=deny_strategy,
    floor=st.floats(-90, -30),
    raise_by=st.floats(0, 30),
    min_seen=st.integers(1, 10),
    more_seen=st.integers(0, 10),
)
def test_stricter_settings_never_accept_more(reads, deny, floor, raise_by, min_seen, more_seen):
    def config(floor_dbm: float, seen: int) -> ReadWindowConfig:
        return ReadWindowConfig(
            antennas=(
                AntennaWindow(antenna=1, rssi_floor_dbm=floor_dbm),
                AntennaWindow(antenna=2, rssi_floor_dbm=floor_dbm),
            ),
            min_seen_count=seen,
        )

    loose = accepted_epcs(filter_window(reads, config(floor, min_seen), RESOLVER))
    strict = accepted_epcs(
        filter_window(reads, config(min(0, floor + raise_by), min_seen + more_seen), RESOLVER)
    )
    assert strict <= loose
    denied = accepted_epcs(filter_window(reads, config(floor, min_seen), RESOLVER, deny=deny))
    assert denied <= loose
