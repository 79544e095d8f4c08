"""The model of the world the accuracy benchmark draws cartons from. Pure: no I/O.

A synthetic catalog (what the station is told) and, per SKU, the truth the catalog only
approximates (true mean weight, true spread); a stream of orders drawn from it; and per carton what
the packer actually put in the box, what lies beside it, and which sensors misbehave. Every number
is a documented assumption (docs/accuracy.md, "The model of the world"); none is tuned to hit a
target. Deterministic: the same seed gives the same catalog and the same cartons.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from rfid.epc import gs1_check_digit
from simulators.rfid_sim import sgtin_for_gtin
from station.domain import Barcode, BoxType, Catalog, CatalogItem, ItemKind

COMPANY_PREFIX = "4012345"  # GS1 company prefix of the synthetic catalog's EAN-13 codes
GIFT_NOTE = "NOTE-GIFT"


@dataclass(frozen=True, slots=True)
class Category:
    """One kind of merchandise and how its units behave."""

    name: str
    share: float  # of the catalog's SKUs
    median_g: float  # weights are log-normal around this
    log_sd: float
    min_g: float
    max_g: float
    unit_cv: float  # true unit-to-unit spread, relative to the unit's weight
    tagged: float  # chance a SKU of this category carries an RFID tag (at a site that tags)
    dead_tag: float  # chance one unit's tag does not answer (detuned by foil/liquid, damaged)
    code_up: float  # chance a unit lands with its barcode facing the overhead camera
    family: float  # chance the SKU belongs to a look-alike family (sizes, colours)
    size_step: float  # relative weight step between neighbouring members of a family
    variable_weight: bool = False
    multi_qty: float = 0.1  # chance an order line asks for more than one unit
    serial: float = 0.0  # chance a SKU is serial-controlled (each unit carries a serial number)


# Share, weight and behaviour per category (docs/accuracy.md explains each choice).
CATEGORIES: tuple[Category, ...] = (
    # socks, cables, gift cards, jewellery, cosmetics minis: the items a scale struggles with
    Category(
        "light accessory", 0.25, 25, 0.55, 4, 60, 0.05, 0.6, 0.003, 0.3, 0.4, 0.0, False, 0.35
    ),
    # t-shirts, knitwear, trousers in polybags: sizes are the classic look-alike
    Category("apparel", 0.25, 250, 0.4, 80, 900, 0.04, 0.9, 0.001, 0.5, 0.8, 0.06),
    # books, mugs, toys, boxed cosmetics
    Category("hard goods", 0.30, 300, 0.6, 60, 1500, 0.015, 0.3, 0.005, 0.5, 0.2, 0.0, serial=0.03),
    # shoes, small appliances, bottles (liquids and metal detune tags); appliances carry serials
    Category("heavy", 0.15, 1200, 0.5, 500, 5000, 0.02, 0.3, 0.01, 0.5, 0.3, 0.04, serial=0.15),
    # deli and produce sold by weight: never weight-checked per unit
    Category("sold by weight", 0.05, 400, 0.4, 100, 1500, 0.15, 0.0, 0.0, 0.3, 0.0, 0.0, True),
)


@dataclass(frozen=True, slots=True)
class WorldModel:
    """Every rate and spread of the world; the defaults are the documented assumptions."""

    skus: int = 600
    popularity_exponent: float = 1.0  # Zipf: the k-th most popular SKU sells ~1/k as often
    # Master data: most catalog weights are close (learned or measured), a few are stale.
    catalog_error_sd: float = 0.01  # relative error of a good catalog weight
    stale_weight_share: float = 0.03  # SKUs whose catalog weight is stale or a vendor guess
    stale_weight_sd: float = 0.06
    catalog_spread_factor: tuple[float, float] = (0.8, 1.25)  # recorded spread / true spread
    # What-if: a site past its shadow weeks whose every per-unit weight is learned from this many
    # units another channel confirmed (0: the catalog as above). A learned mean is off by the
    # unit spread / sqrt(n), its spread by the sampling error of a standard deviation.
    learned_samples: int = 0
    # The carton
    paperwork_g: float = 12.0
    paperwork_sd_g: float = 3.0
    fill_g: float = 15.0
    fill_sd_g: float = 6.0
    gift_note_rate: float = 0.08
    large_carton_rate: float = 0.015  # B2B / replenishment cartons of 20-100 units
    # The scale: verification interval e, and its real noise (better than the MPE bound)
    division_g: float = 2.0
    scale_noise_sd_g: float = 1.0
    # What goes wrong in a short carton, by share of short cartons
    error_shares: tuple[tuple[str, float], ...] = (
        ("left_out", 0.60),
        ("line_left_out", 0.10),
        ("wrong_variant", 0.15),
        ("swapped_other_order", 0.15),
    )
    left_beside_box: float = 0.3  # a left-out unit lies on the table beside the box
    # RFID: the field under the carton, neighbours' tags on the table
    tag_rssi_dbm: tuple[float, float] = (-40.0, 4.0)  # per-tag mean, spread over tags
    stray_rate: float = 0.3  # mean stray tags (other orders' units) near the station per carton
    stray_rssi_dbm: tuple[float, float] = (-67.0, 4.0)
    beside_rssi_dbm: tuple[float, float] = (-61.0, 4.0)  # a unit lying right beside the box
    unknown_tag_rate: float = 0.0005  # a tagged unit whose EPC maps to no catalog item
    # Vision (count errors come from the model card; see sensors.VisionModel)
    covered_per_insertion: float = 0.15  # chance a later insertion covers an earlier unit
    code_read: float = 0.9  # chance a face-up, uncovered code is decoded in a frame
    # Per-unit scans of the SKUs the carton's plan says the packer must scan
    scanned_but_left_out: float = 0.05  # a left-out unit the packer had scanned anyway
    double_scan: float = 0.002  # a packed unit scanned twice (the station drops a repeated serial)
    unscanned_unit: float = 0.001  # a unit put in without its scan
    scanned_after_insert: float = 0.05  # a unit scanned just after it went in, not just before
    # Per-insertion weight: how the packer puts things on the platter
    two_at_once: float = 0.1  # a unit goes in with the next one before the scale settles
    taken_out_and_back: float = 0.02  # a unit is taken out again (to rearrange) and put back
    # The screen asks for a second look when a put-back's frame differs (set down over another
    # unit, a hand in the way): the packer lifts it again and sets it down (an assumption; the
    # second set-down covers units as any insertion does)
    second_look: float = 0.8
    paperwork_with_box: float = 0.5  # the paperwork goes down inside the box, in one step
    not_started_empty: float = 0.01  # the box was on the platter before the order started
    # Sensor faults per carton (the fault-enriched set forces one on every short carton)
    scale_down: float = 0.0005
    scale_stale: float = 0.0005
    scale_unsure: float = 0.002  # unstable (packer leaning on it), drift, over capacity
    rfid_down: float = 0.0005
    rfid_stale: float = 0.0005
    camera_down: float = 0.0005
    insertion_unreadable: float = 0.002  # a hand stayed over the box until the capture timeout


class ErrorKind(StrEnum):
    NONE = "complete"
    LEFT_OUT = "left_out"  # one unit of a line not packed
    LINE_LEFT_OUT = "line_left_out"  # every unit of a line not packed
    WRONG_VARIANT = "wrong_variant"  # a look-alike (other size/colour) packed instead
    SWAPPED_OTHER_ORDER = "swapped_other_order"  # a unit of another order packed instead


class Fault(StrEnum):
    DOWN = "down"
    STALE = "stale"
    UNSURE = "unsure"


@dataclass(frozen=True, slots=True)
class SkuTruth:
    """What the catalog does not know exactly about a SKU."""

    sku: str
    category: Category
    true_mean_g: float
    true_sd_g: float
    family: str | None
    gtin: str  # EAN-13


@dataclass(frozen=True, slots=True)
class World:
    model: WorldModel
    catalog: Catalog
    truth: dict[str, SkuTruth]
    families: dict[str, tuple[str, ...]]
    box_true_sd: dict[str, float]
    popularity: tuple[tuple[str, ...], tuple[float, ...]]  # SKUs, cumulative weights


@dataclass(frozen=True, slots=True)
class Unit:
    """One physical unit: its SKU, its real weight, its tag (EPC hex) if it has one."""

    sku: str
    weight_g: float
    epc: str | None  # EPC hex of its tag; None when the SKU is not tagged
    tag_answers: bool  # False: a dead or detuned tag that no reader hears
    code_up: bool  # its barcode faces the overhead camera


@dataclass(frozen=True, slots=True)
class Carton:
    """One generated carton: the order (what the station expects) and the truth."""

    index: int
    expected: dict[str, int]  # products and inserts, as the manifest expands them
    packed: tuple[Unit, ...]  # in packing order
    beside: tuple[Unit, ...]  # units of this order left on the table beside the box
    strays: tuple[Unit, ...]  # other orders' tagged units near the station
    box: str
    box_true_g: float
    paperwork_true_g: float
    fill_true_g: float  # void fill and tape
    note_true_g: float  # the gift note, 0 when the order has none
    error: ErrorKind
    faults: dict[str, Fault] = field(default_factory=dict)  # channel -> fault
    missing: dict[str, int] = field(default_factory=dict)  # expected SKU -> units not packed
    foreign: dict[str, int] = field(default_factory=dict)  # packed SKU not on the order -> units

    @property
    def materials_true_g(self) -> float:
        """Paperwork, void fill, tape and the gift note actually in the box."""
        return self.paperwork_true_g + self.fill_true_g + self.note_true_g

    @property
    def short(self) -> bool:
        return bool(self.missing)

    @property
    def units(self) -> int:
        return sum(self.expected.values())


BOXES: tuple[tuple[str, float, float, float], ...] = (
    # code, tare g, tare spread g, heaviest content g it is chosen for
    ("MAILER", 60, 3, 400),
    ("BOX-S", 150, 5, 1200),
    ("BOX-M", 280, 8, 3000),
    ("BOX-L", 450, 12, 7000),
    ("BOX-XL", 700, 18, 1e9),
)


def build_world(seed: int, model: WorldModel | None = None) -> World:
    """The synthetic catalog and its hidden truth for `seed`."""
    model = model or WorldModel()
    rng = random.Random(f"catalog:{seed}")
    items: list[CatalogItem] = []
    truth: dict[str, SkuTruth] = {}
    families: dict[str, list[str]] = {}
    ref = 0
    weights = [c.share for c in CATEGORIES]
    while len(truth) < model.skus:
        category = rng.choices(CATEGORIES, weights)[0]
        base = _clip(
            rng.lognormvariate(math.log(category.median_g), category.log_sd),
            category.min_g,
            category.max_g,
        )
        in_family = rng.random() < category.family
        members = rng.randint(2, 5) if in_family else 1
        family = f"F{len(families):04d}" if in_family else None
        for k in range(min(members, model.skus - len(truth))):
            ref += 1
            sku = f"{category.name.split()[0][:4].upper()}-{ref:05d}"
            mean = base * (1 + category.size_step) ** k
            sd = mean * category.unit_cv
            gtin = _ean13(ref)
            truth[sku] = SkuTruth(sku, category, mean, sd, family, gtin)
            if family is not None:
                families.setdefault(family, []).append(sku)
            items.append(_catalog_item(sku, category, mean, sd, gtin, family, model, rng))
    items.append(
        CatalogItem(
            sku=GIFT_NOTE,
            name="Gift note",
            kind=ItemKind.INSERT,
            unit_weight_g=6.0,
            weight_spread_g=1.0,
            vision_visible=False,
        )
    )
    boxes = [
        BoxType(code=code, name=code, tare_g=tare, tare_spread_g=sd) for code, tare, sd, _ in BOXES
    ]
    catalog = Catalog.from_lists(items, boxes)
    # The real tare spread is what the catalog says (boxes are weighed by the pallet).
    box_true_sd = {code: sd for code, _, sd, _ in BOXES}
    skus = sorted(truth)
    rng.shuffle(skus)  # popularity is independent of category and catalog order
    cumulative, total = [], 0.0
    for rank in range(len(skus)):
        total += 1.0 / (rank + 1) ** model.popularity_exponent
        cumulative.append(total)
    return World(
        model,
        catalog,
        truth,
        {k: tuple(v) for k, v in families.items()},
        box_true_sd,
        (tuple(skus), tuple(cumulative)),
    )


def _catalog_item(
    sku: str,
    category: Category,
    mean: float,
    sd: float,
    gtin: str,
    family: str | None,
    model: WorldModel,
    rng: random.Random,
) -> CatalogItem:
    # The same draws with or without learned weights: the what-if changes sizes, not luck.
    stale = rng.random() < model.stale_weight_share
    n = model.learned_samples
    if n > 1:
        error = rng.gauss(0, sd / mean / math.sqrt(n))
        within = math.sqrt(3 / (2 * (n - 1)))  # a uniform with a std. deviation's sampling sd
        spread = sd * rng.uniform(1 - within, 1 + within)
    else:
        error = rng.gauss(0, model.stale_weight_sd if stale else model.catalog_error_sd)
        spread = sd * rng.uniform(*model.catalog_spread_factor)
    return CatalogItem(
        sku=sku,
        name=f"{category.name} {sku}",
        barcodes=(Barcode(code=gtin),),
        unit_weight_g=round(mean * (1 + error), 1),
        weight_spread_g=round(spread, 2),
        variable_weight=category.variable_weight,
        # The site's smallest pack of a good sold by weight: four spreads under the mean.
        min_unit_weight_g=round(max(0.0, mean - 4 * sd), 1) if category.variable_weight else None,
        rfid_tagged=rng.random() < category.tagged,
        lookalike_group=family,  # the site's catalog knows its sizes and colours
        # Its own generator: the catalog's other draws stay what they were before serials.
        serial_controlled=random.Random(f"serial:{sku}").random() < category.serial,
    )


def _ean13(reference: int) -> str:
    digits = f"{COMPANY_PREFIX}{reference:05d}"
    return digits + str(gs1_check_digit(digits))


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


# --- cartons -------------------------------------------------------------------------------------


class CartonStream:
    """Cartons drawn from a world; `carton(i, error)` is a pure function of (seed, i, error)."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed

    def complete(self, count: int, start: int = 0) -> Iterator[Carton]:
        for i in range(start, start + count):
            yield self.carton(i, ErrorKind.NONE)

    def short(self, count: int, start: int = 0, *, forced_fault: bool = False) -> Iterator[Carton]:
        """Short cartons; the error kind of each is drawn with the model's shares."""
        kinds = [ErrorKind(k) for k, _ in self.world.model.error_shares]
        shares = [s for _, s in self.world.model.error_shares]
        for i in range(start, start + count):
            rng = random.Random(f"kind:{self.seed}:{i}")
            yield self.carton(i, rng.choices(kinds, shares)[0], forced_fault=forced_fault)

    def carton(
        self, index: int, error: ErrorKind, *, forced_fault: bool = False, units: int | None = None
    ) -> Carton:
        """Carton `index` of the stream; `units` forces an order of exactly that many units."""
        rng = random.Random(f"carton:{self.seed}:{index}:{error.value}:{forced_fault}:{units}")
        world, model = self.world, self.world.model
        expected = self._order(rng) if units is None else self._sized_order(rng, units)
        plan = [sku for sku, n in expected.items() for _ in range(n) if sku != GIFT_NOTE]
        missing: Counter[str] = Counter()
        foreign: Counter[str] = Counter()
        packed_skus = list(plan)
        beside: list[str] = []
        if error is not ErrorKind.NONE:
            error = self._apply_error(rng, error, expected, packed_skus, missing, foreign, beside)
        rng.shuffle(packed_skus)
        packed = tuple(self._unit(rng, sku) for sku in packed_skus)
        content_g = sum(
            world.truth[s].true_mean_g * n for s, n in expected.items() if s in world.truth
        )
        box = next(code for code, _, _, top in BOXES if content_g <= top)
        box_item = world.catalog.boxes[box]
        strays = tuple(
            self._unit(rng, self._popular_tagged(rng))
            for _ in range(poisson(rng, model.stray_rate))
        )
        return Carton(
            index=index,
            expected=expected,
            packed=packed,
            beside=tuple(self._unit(rng, sku) for sku in beside),
            strays=strays,
            box=box,
            box_true_g=rng.gauss(box_item.tare_g, world.box_true_sd[box]),
            **self._materials(rng, GIFT_NOTE in expected),
            error=error,
            faults=self._faults(rng, forced_fault),
            missing=dict(missing),
            foreign=dict(foreign),
        )

    # -- the order ----------------------------------------------------------------------------

    def _order(self, rng: random.Random) -> dict[str, int]:
        model = self.world.model
        if rng.random() < model.large_carton_rate:
            lines = rng.randint(8, 30)
        else:
            lines = rng.choices(range(1, 11), (45, 25, 13, 7, 4, 2, 1.5, 1, 0.8, 0.7))[0]
        expected: dict[str, int] = {}
        while len(expected) < lines:
            sku = self._popular(rng)
            if sku in expected:
                continue
            category = self.world.truth[sku].category
            if rng.random() < category.multi_qty:
                quantity = rng.choices((2, 3, 4, 5, 6), (50, 25, 12, 8, 5))[0]
            else:
                quantity = 1
            expected[sku] = quantity
        while sum(expected.values()) > 100:  # a packing table's largest carton
            sku = max(expected, key=expected.__getitem__)
            expected[sku] -= 1
        if rng.random() < model.gift_note_rate:
            expected[GIFT_NOTE] = 1
        return expected

    def _sized_order(self, rng: random.Random, units: int) -> dict[str, int]:
        """An order of exactly `units` units over about a quarter as many lines."""
        expected: dict[str, int] = {}
        while len(expected) < max(1, units // 4):
            expected.setdefault(self._popular(rng), 1)
        skus = sorted(expected)
        for _ in range(units - len(skus)):
            expected[rng.choice(skus)] += 1
        return expected

    def _popular(self, rng: random.Random) -> str:
        skus, cumulative = self.world.popularity
        return rng.choices(skus, cum_weights=cumulative)[0]

    def _popular_tagged(self, rng: random.Random) -> str:
        while True:
            sku = self._popular(rng)
            if self.world.catalog.items[sku].rfid_tagged:
                return sku

    # -- what goes wrong ----------------------------------------------------------------------

    def _apply_error(
        self,
        rng: random.Random,
        error: ErrorKind,
        expected: dict[str, int],
        packed: list[str],
        missing: Counter[str],
        foreign: Counter[str],
        beside: list[str],
    ) -> ErrorKind:
        """Change `packed` (the planned units) to what the packer really packed."""
        victim = rng.choice(packed)  # every planned unit is equally likely to go wrong
        family = self.world.truth[victim].family
        if error is ErrorKind.WRONG_VARIANT:
            others = [s for s in self.world.families.get(family or "", ()) if s not in expected]
            if not others:
                error = ErrorKind.LEFT_OUT  # nothing it could be confused with
            else:
                packed.remove(victim)
                missing[victim] += 1
                variant = rng.choice(others)
                packed.append(variant)
                foreign[variant] += 1
                return error
        if error is ErrorKind.SWAPPED_OTHER_ORDER:
            stranger = self._popular(rng)
            if stranger in expected:
                error = ErrorKind.LEFT_OUT
            else:
                packed.remove(victim)
                missing[victim] += 1
                packed.append(stranger)
                foreign[stranger] += 1
                return error
        if error is ErrorKind.LINE_LEFT_OUT and expected[victim] < 2:
            error = ErrorKind.LEFT_OUT
        count = expected[victim] if error is ErrorKind.LINE_LEFT_OUT else 1
        for _ in range(count):
            packed.remove(victim)
        missing[victim] += count
        if rng.random() < self.world.model.left_beside_box:
            beside.extend([victim] * count)
        return error

    def _unit(self, rng: random.Random, sku: str) -> Unit:
        truth = self.world.truth[sku]
        weight = max(0.5, rng.gauss(truth.true_mean_g, truth.true_sd_g))
        epc: str | None = None
        if self.world.catalog.items[sku].rfid_tagged:
            # A mis-encoded tag carries a GTIN no catalog item has.
            gtin = (
                _ean13(99_999) if rng.random() < self.world.model.unknown_tag_rate else truth.gtin
            )
            epc = sgtin_for_gtin(gtin, rng.getrandbits(36)).hex().upper()
        answers = rng.random() >= truth.category.dead_tag
        return Unit(sku, weight, epc, answers, rng.random() < truth.category.code_up)

    def _materials(self, rng: random.Random, gift_note: bool) -> dict[str, float]:
        """Paperwork, void fill and tape, and the gift note when the order has one."""
        model = self.world.model
        note = self.world.catalog.items[GIFT_NOTE]
        return {
            "paperwork_true_g": max(0.0, rng.gauss(model.paperwork_g, model.paperwork_sd_g)),
            "fill_true_g": max(0.0, rng.gauss(model.fill_g, model.fill_sd_g)),
            "note_true_g": rng.gauss(note.unit_weight_g or 0.0, note.weight_spread_g)
            if gift_note
            else 0.0,
        }

    def _faults(self, rng: random.Random, forced: bool) -> dict[str, Fault]:
        m = self.world.model
        rates = {
            "weight": (
                (Fault.DOWN, m.scale_down),
                (Fault.STALE, m.scale_stale),
                (Fault.UNSURE, m.scale_unsure),
            ),
            "rfid": ((Fault.DOWN, m.rfid_down), (Fault.STALE, m.rfid_stale)),
            # A stale or unsure camera only in the fault-enriched set: the stream's unreadable
            # scenes come from `insertion_unreadable`, per insertion.
            "vision": ((Fault.DOWN, m.camera_down), (Fault.STALE, 0.0), (Fault.UNSURE, 0.0)),
        }
        faults: dict[str, Fault] = {}
        for channel, options in rates.items():
            for fault, rate in options:
                if rng.random() < rate:
                    faults[channel] = fault
                    break
        if forced:  # the fault-enriched set: one channel is faulty in every carton
            channel = rng.choice(sorted(rates))
            faults[channel] = rng.choice([f for f, _ in rates[channel]])
        return faults


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method: fine for the small means used here)."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
