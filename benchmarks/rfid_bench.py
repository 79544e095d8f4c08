"""RFID benchmark: how many tag reads a station can judge per second, and what RFID adds to the
verdict of a big carton. Pure code, no reader: the reads are built in memory.

Figures:

a. EPC decode + SKU lookup: distinct SGTIN-96 EPCs resolved per second by a fresh
   `EpcSkuResolver` (no cache hits), through our own decoder and the catalog's GTIN index.
b. decisive-window filter: reads per second through `filter_window` for a 200-unit carton read in
   a 1 s window (20 reads per tag, strong) plus 60 neighbour strays (weak, some on the wrong
   antenna), decoding included (fresh resolver per window), against a shipped-EPC deny map.
c. verdict time RFID adds for that 200-unit carton: `filter_window` + `rfid_report` +
   `VerificationPolicy.decide` (target p99 <= 50 ms on 2 cores, a guide: the decisive window's own
   length, `window_s`, dominates what the packer waits).

Baseline: see the reply of the session that added it (first run on the shared 2-core VM).
"""

from __future__ import annotations

import random
import time

from benchmarks.figures import Figure, summary
from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.epc import encode_sgtin96, gs1_check_digit
from rfid.identity import EpcSkuResolver
from rfid.reads import TagRead
from rfid.window import filter_window
from station.domain import Barcode, Catalog, CatalogItem
from station.rfid_check import rfid_report
from station.verification import VerificationPolicy

SKU_COUNT = 40
UNITS = 200
READS_PER_TAG = 20
STRAYS = 60
TARGET_MS = 50.0
WINDOW = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-55),), min_seen_count=3
)


def _catalog() -> Catalog:
    items = {}
    for i in range(SKU_COUNT):
        reference = f"{i:06d}"
        digits = "0" + "0614141" + reference[1:]
        check = gs1_check_digit(digits)
        sku = f"SKU-{i:03d}"
        items[sku] = CatalogItem(
            sku=sku,
            name=sku,
            barcodes=(Barcode(code=digits + str(check)),),
            unit_weight_g=100.0,
            rfid_tagged=True,
        )
    return Catalog(items=items, boxes={})


def _epc(sku_index: int, serial: int) -> bytes:
    return encode_sgtin96(1, "0614141", f"{sku_index:06d}", serial)


def _carton(rng: random.Random) -> tuple[dict[str, int], list[TagRead], dict[str, str]]:
    expected: dict[str, int] = {}
    reads: list[TagRead] = []
    for unit in range(UNITS):
        index = unit % SKU_COUNT
        expected[f"SKU-{index:03d}"] = expected.get(f"SKU-{index:03d}", 0) + 1
        epc = _epc(index, 1_000_000 + unit)
        for k in range(READS_PER_TAG):
            at = 10.0 + k * 0.05
            reads.append(TagRead(epc, 1, rng.gauss(-45, 3), at, at, 1, "platter"))
    deny = {}
    for stray in range(STRAYS):
        epc = _epc(stray % SKU_COUNT, 5_000_000 + stray)
        for k in range(5):
            at = 10.0 + k * 0.2
            antenna = 2 if stray % 3 == 0 else 1
            reads.append(TagRead(epc, antenna, rng.gauss(-72, 3), at, at, 1, "platter"))
        if stray % 10 == 0:
            deny[epc.hex().upper()] = "shipped"
    rng.shuffle(reads)
    return expected, reads, deny


def run(smoke: bool) -> list[Figure]:
    rng = random.Random(1)
    catalog = _catalog()
    index = catalog.barcode_index()
    rounds = 5 if smoke else 60

    decode_rates = []
    epcs = [_epc(i % SKU_COUNT, 9_000_000 + i) for i in range(2_000 if smoke else 20_000)]
    for _ in range(3 if smoke else 10):
        resolver = EpcSkuResolver(index)
        started = time.perf_counter()
        for epc in epcs:
            resolver.resolve(epc)
        decode_rates.append(len(epcs) / (time.perf_counter() - started))

    expected, reads, deny = _carton(rng)
    policy = VerificationPolicy(required_channels=frozenset({"rfid"}))
    filter_rates, verdict_ms = [], []
    for _ in range(rounds):
        resolver = EpcSkuResolver(index)
        started = time.perf_counter()
        result = filter_window(reads, WINDOW, resolver, deny=deny, window=(9.0, 12.0))  # type: ignore[arg-type]
        filtered = time.perf_counter()
        report = rfid_report(
            expected, catalog, result, sku_of=lambda e, r=resolver: r.resolve(e).sku
        )
        verdict = policy.decide(expected, [report])
        done = time.perf_counter()
        assert verdict.passed, verdict.reasons
        filter_rates.append(len(reads) / (filtered - started))
        verdict_ms.append((done - started) * 1000)

    decode_median, _ = summary(decode_rates)
    filter_median, _ = summary(filter_rates)
    verdict_median, verdict_p99 = summary(verdict_ms)
    return [
        Figure(
            "RFID EPC decode + SKU lookup",
            "EPCs/s",
            decode_median,
            note=f"{len(epcs)} distinct SGTIN-96, fresh resolver, {SKU_COUNT}-SKU catalog",
        ),
        Figure(
            "RFID window filter (decode included)",
            "reads/s",
            filter_median,
            note=f"{len(reads)} reads: {UNITS} carton tags x {READS_PER_TAG} + {STRAYS} strays",
        ),
        Figure(
            f"RFID verdict time added, {UNITS}-unit carton",
            "ms",
            verdict_median,
            verdict_p99,
            target=f"p99 <= {TARGET_MS:g} ms",
            met=verdict_p99 <= TARGET_MS,
            note="filter_window + rfid_report + policy.decide; window_s itself not included",
        ),
    ]
