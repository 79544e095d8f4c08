"""A simulated packing table: scale and scanner simulators on real ptys, a station config that
points the daemon at them, and a scripted packer that packs cartons from the example catalog.

The demo, the end-to-end tests and the benchmarks all use it, so the daemon runs the same code
path as on hardware: it opens /dev/pts/N with pyserial and speaks MT-SICS to the simulator.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rfid.identity import EpcSkuResolver
from simulators.camera_scene import CameraScene, SceneUnit, write_scene
from simulators.rfid_sim import SimTag, TagField, sgtin_for_gtin
from simulators.rfid_sim_llrp import LlrpReaderSimulator
from simulators.scale_sim import ScaleSimulator
from simulators.scanner_sim import PtySerialScanner
from station.catalog_file import load_catalog
from station.domain import Catalog, ItemKind, Manifest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CATALOG = REPO / "config" / "catalog.example.json"
EXAMPLE_MANIFESTS = REPO / "config" / "manifests"
PAPERWORK_G = 6.0  # the packing slip the rig's packer puts in every carton
# The rig's scale reads in 1 g divisions with a one-division motion band: a settled change larger
# than this is a weight step (and, with a carton open, an insertion the camera takes a frame of).
STEP_BAND_G = 1.0
RFID_READER = "platter"  # the rig's LLRP reader; its device is "rfid platter"
RFID_FLOOR_DBM = -55.0  # antenna 1 (under the platter); antenna 2 faces the neighbour
IN_CARTON_DBM = -42.0
BESIDE_DBM = -68.0  # a unit on the table beside the box: read, but below the floor


@dataclass(frozen=True, slots=True)
class RigTiming:
    """Scale timing for the rig; short windows keep tests and the demo brisk."""

    stability_window_s: float = 0.3
    settle_window_s: float = 0.2
    motion_s: float = 0.25  # how long the simulated scale shows motion after a placement
    poll_interval_s: float = 0.05


@dataclass
class SimulatedStation:
    workdir: Path
    broker_host: str
    broker_port: int
    station_id: str = "pack-01"
    site_id: str = "dc-sim"
    mode: str = "enforce"
    mqtt_protocol: str = "5"
    timing: RigTiming = field(default_factory=RigTiming)
    seed: int = 7
    extra_config: str = ""  # TOML appended to the generated config ([api], [[reviewers]], ...)
    rfid: bool = False  # an LLRP reader under the platter; tagged units carry SGTIN-96 tags
    rfid_options: str = ""  # extra keys of the [rfid] section, e.g. "require_second_channel = true"
    # An overhead camera (the daemon's [vision] simulator source) that renders the units put in
    # the carton, insertion by insertion; off by default (no camera stack loaded).
    camera: bool = False
    vision_options: str = ""  # extra keys of the [vision] section, e.g. "capture_timeout_s = 2"
    # The catalog the station's config names (a site's own master data, which may be wrong),
    # and the one the rig's units really weigh (None: the same).
    catalog_path: Path = EXAMPLE_CATALOG
    true_catalog_path: Path | None = None
    workflow_options: str = ""  # extra keys of [workflow], e.g. "inactivity_timeout_s = 60"
    catalog_options: str = ""  # extra keys of [catalog], e.g. 'pictures_dir = "pictures"'
    # The daemon runs on a clock this many times faster (`packstation run --clock-speed`). The
    # simulated devices still move in real time, so every device timing in the config (polls,
    # windows, staleness, settle timeout) is written in station seconds: real seconds x speed.
    clock_speed: float = 1.0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manifest_dir = self.workdir / "manifests"
        if not self.manifest_dir.exists():
            shutil.copytree(EXAMPLE_MANIFESTS, self.manifest_dir)
        self.catalog: Catalog = load_catalog(self.true_catalog_path or self.catalog_path)
        self.scale = ScaleSimulator("mtsics", tcp_port=None, seed=self.seed)
        self.scanner = PtySerialScanner("cr")
        self.config_path = self.workdir / f"{self.station_id}.toml"
        self._rng = random.Random(self.seed)
        self._on_platter_g = 0.0
        self.tag_field = TagField(seed=self.seed)
        self.rfid_reader = LlrpReaderSimulator(self.tag_field) if self.rfid else None
        self._next_serial = 100_000 * self.seed + 1
        self.carton_epcs: list[bytes] = []  # tags of the units in the carton on the platter
        self.beside_epcs: dict[str, bytes] = {}  # SKU -> tag of a unit left beside the box
        # SKU -> how many of its next units carry a tag that never answers (dead, detuned)
        self.dead_tags: Counter[str] = Counter()
        self.scene_path = self.workdir / "camera-scene.json"
        self.scene = CameraScene()  # what the camera sees in the carton on the platter

    def start(self) -> SimulatedStation:
        self.scale.start()
        if self.rfid_reader is not None:
            self.rfid_reader.start()
        if self.camera:
            write_scene(self.scene_path, self.scene)
        self.config_path.write_text(self.config_toml())
        return self

    def stop(self) -> None:
        self.scale.stop()
        self.scanner.close()
        if self.rfid_reader is not None:
            self.rfid_reader.stop()

    def __enter__(self) -> SimulatedStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def station_s(self, real_s: float) -> float:
        """A real duration as station-clock seconds, for the daemon's config."""
        return round(real_s * self.clock_speed, 6)

    def config_toml(self) -> str:
        t = self.timing
        s = self.station_s
        return f"""
[station]
id = "{self.station_id}"
site = "{self.site_id}"
data_dir = "{self.workdir / "data"}"

[catalog]
path = "{self.catalog_path}"
{self.catalog_options}

[manifests.source]
type = "directory"
path = "{self.manifest_dir}"

[scale]
protocol = "mtsics"
port = "{self.scale.pty_path}"
poll_interval_s = {s(t.poll_interval_s)}
stability_window_s = {s(t.stability_window_s)}
settle_window_s = {s(t.settle_window_s)}
division_g = {STEP_BAND_G}
motion_band_divisions = 1.0
capacity_g = 15000.0
stale_after_s = {s(2.0)}
reconnect_min_s = {s(0.5)}
reconnect_max_s = {s(5.0)}

[[scanners]]
type = "serial"
name = "handheld"
port = "{self.scanner.slave_path}"

[mqtt]
host = "{self.broker_host}"
port = {self.broker_port}
protocol = "{self.mqtt_protocol}"
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[workflow]
mode = "{self.mode}"
{self.workflow_options}

[workflow.codes]
order_carton = '^(?P<order>ORD-[0-9]+)(?:/(?P<carton>C[0-9]+))?$'
default_carton_id = "C1"

[weight]
paperwork_g = {PAPERWORK_G}
paperwork_spread_g = 1.0
fill_spread_g = 2.0

[verdict]
settle_timeout_s = {s(5.0)}
manifest_check_timeout_s = {s(1.0)}

[logging]
level = "INFO"
json_lines = true
{self._api_default()}
{self.extra_config}
{self._rfid_toml()}
{self._vision_toml()}"""

    def _rfid_toml(self) -> str:
        if self.rfid_reader is None:
            return ""
        s = self.station_s
        return f"""
[rfid]
window_s = {s(0.6)}
{self.rfid_options}

[[rfid.readers]]
protocol = "llrp"
name = "{RFID_READER}"
host = "127.0.0.1"
tcp_port = {self.rfid_reader.tcp_port}
antennas = [1, 2]
keepalive_s = 1.0
stale_after_s = {s(3.0)}
reconnect_min_s = {s(0.2)}
reconnect_max_s = {s(1.0)}

[rfid.window]
antennas = [{{ antenna = 1, rssi_floor_dbm = {RFID_FLOOR_DBM} }}]
min_seen_count = 3
"""

    def _vision_toml(self) -> str:
        if not self.camera:
            return ""
        return f"""
[vision]
capture_timeout_s = 2.0
{self.vision_options}

[vision.source]
type = "simulator"
scene_file = "{self.scene_path}"
seed = {self.seed}
width = 640
height = 480
interval_s = 0.05
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[vision.barcodes]
formats = ["EAN13"]
"""

    def _api_default(self) -> str:
        # A free port unless the test configures [api] itself: several rigs (and a leftover
        # daemon still closing its socket) must never fight over the default 8420.
        return "" if "[api]" in self.extra_config else "[api]\nport = 0\n"

    # -- the packer's hands --------------------------------------------------------------------

    def scan(self, code: str) -> None:
        self.scanner.send(code)

    @property
    def on_platter_g(self) -> float:
        """What lies on the platter (the scale shows it once it is plugged in and settled)."""
        return self._on_platter_g

    def place(self, grams: float) -> None:
        """Put something on the platter (or take it off with negative grams)."""
        self._on_platter_g = max(0.0, self._on_platter_g + grams)
        self.scale.set_weight(self._on_platter_g, motion_s=self.timing.motion_s)

    def jostle(self, motion_s: float) -> None:
        """Someone leans on the table: the scale shows motion for `motion_s`, the load unchanged
        (a weighing asked for meanwhile waits for it to settle)."""
        self.scale.set_weight(self._on_platter_g, motion_s=motion_s)

    def clear_platter(self) -> None:
        self._on_platter_g = 0.0
        self.scale.set_weight(0.0, motion_s=self.timing.motion_s)
        for epc in [*self.carton_epcs, *self.beside_epcs.values()]:  # the carton leaves
            self.tag_field.remove(epc)
        self.carton_epcs = []
        self.beside_epcs = {}
        self._show(CameraScene(carton=self.scene.carton + 1, unplugged=self.scene.unplugged))

    # -- RFID tags -----------------------------------------------------------------------------

    def new_tag(self, sku: str) -> bytes | None:
        """A fresh SGTIN-96 for one unit of `sku` (catalog GTIN + serial); None if untagged."""
        epc = self.upcoming_tag(sku)
        if epc is not None:
            self._next_serial += 1
        return epc

    def upcoming_tag(self, sku: str) -> bytes | None:
        """The tag the next tagged unit will carry if it is a `sku` (e.g. to announce it as
        shipped from another station before packing it here)."""
        item = self.catalog.items[sku]
        if not item.rfid_tagged or not item.barcodes:
            return None
        return sgtin_for_gtin(item.barcodes[0].code, self._next_serial)

    def _tag_in_carton(self, sku: str) -> None:
        epc = self.new_tag(sku) if self.rfid_reader is not None else None
        if epc is not None and self.dead_tags[sku] > 0:
            self.dead_tags[sku] -= 1  # the unit goes in, its tag stays silent
        elif epc is not None:
            self.tag_field.add(SimTag(epc, 1, IN_CARTON_DBM, 2.0, 0.95))
            self.carton_epcs.append(epc)

    def leave_beside(self, sku: str) -> bytes | None:
        """One unit of `sku` lies on the table beside the box: its tag answers antenna 1, but
        weakly (below the floor), and it does not weigh on the platter. If a unit of `sku` is in
        the carton, that one comes out (held over the platter while packing, then set aside)."""
        epc = next((e for e in self.carton_epcs if self._sku_of(e) == sku), None)
        if epc is not None:
            self.carton_epcs.remove(epc)
            self.tag_field.remove(epc)
        self._camera_take(sku)
        epc = epc or self.new_tag(sku)
        if epc is not None:
            self.tag_field.add(SimTag(epc, 1, BESIDE_DBM, 2.0, 0.9))
            self.beside_epcs[sku] = epc
        return epc

    def put_back(self, sku: str) -> float:
        """The unit of `sku` left beside the box goes into the carton after all (tag and all).
        Returns the grams it added."""
        epc = self.beside_epcs.pop(sku, None)
        if epc is None:
            return self.add_unit(sku)
        self.tag_field.remove(epc)
        self.tag_field.add(SimTag(epc, 1, IN_CARTON_DBM, 2.0, 0.95))
        self.carton_epcs.append(epc)
        self._camera_put(sku)
        grams = self.unit_weight(sku)
        self.place(grams)
        return grams

    def take_away(self, sku: str) -> bytes | None:
        """A unit of `sku` that was in the carton (read at full strength) leaves the antennas'
        reach: back in the tote, in a pocket. Returns its EPC."""
        epc = next((e for e in self.carton_epcs if self._sku_of(e) == sku), None)
        if epc is not None:
            self.carton_epcs.remove(epc)
            self.tag_field.remove(epc)
        self._camera_take(sku)
        return epc

    def pass_cart(self, sku: str, count: int = 30, duration_s: float = 0.5) -> list[bytes]:
        """A cart of `count` tagged units rolls past the platter: strong on antenna 1 for a
        moment, then gone."""
        epcs = [epc for _ in range(count) if (epc := self.new_tag(sku)) is not None]
        self.tag_field.pass_cart(epcs, duration_s, antenna=1, rssi_dbm=IN_CARTON_DBM + 4)
        return epcs

    def add_strays(self, sku: str, count: int = 3) -> list[bytes]:
        """Units of another station's order: weak on our antenna 1, strong on antenna 2."""
        epcs = [epc for _ in range(count) if (epc := self.new_tag(sku)) is not None]
        for epc in epcs:
            self.tag_field.add(SimTag(epc, 1, -74.0, 3.0, 0.5), SimTag(epc, 2, -48.0, 2.0, 0.9))
        return epcs

    def _sku_of(self, epc: bytes) -> str | None:
        return EpcSkuResolver.from_catalog(self.catalog).resolve(epc).sku

    def unit_weight(self, sku: str) -> float:
        """One real unit: the catalog mean with the catalog's spread."""
        item = self.catalog.items[sku]
        mean = item.unit_weight_g or 0.0
        return max(0.1, self._rng.gauss(mean, item.weight_spread_g))

    def box_weight(self, box_code: str) -> float:
        box = self.catalog.boxes[box_code]
        return self._rng.gauss(box.tare_g, box.tare_spread_g)

    def write_manifest(self, manifest: Manifest) -> None:
        """Publish a manifest to the station's directory source, as a WMS would."""
        folder = self.manifest_dir / manifest.order_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{manifest.carton_id}.json").write_text(manifest.model_dump_json(indent=2))

    def manifest(self, order_id: str, carton_id: str) -> Manifest:
        raw = (self.manifest_dir / order_id / f"{carton_id}.json").read_bytes()
        return Manifest.model_validate_json(raw)

    def units_of(self, manifest: Manifest) -> list[str]:
        """The units a packer puts in for a manifest: kits as their components, one per unit."""
        units: list[str] = []
        for line in manifest.lines:
            if line.ship_later:
                continue
            item = self.catalog.items[line.sku]
            parts = [(c.sku, c.quantity) for c in item.components] or [(line.sku, 1)]
            for sku, per_line in parts:
                units += [sku] * (per_line * line.quantity)
        return units

    def pack(
        self,
        badge: str,
        order_id: str,
        carton_id: str,
        box_code: str,
        leave_out: tuple[str, ...] = (),
        pause_s: float = 0.05,
        beside: tuple[str, ...] = (),
        taken_away: tuple[str, ...] = (),
        scan_units: bool = False,
    ) -> list[str]:
        """Log in, open the carton, put the box and the units on the platter, close.

        `leave_out` names SKUs of which one unit is not packed. Returns the units left out.
        `beside` names SKUs of which one unit goes in the carton during packing and is then set
        down beside the box before the close (`leave_beside`). `taken_away` names SKUs of which
        one unit goes in the carton, is read there at full strength, and is carried off (out of
        the antennas' reach) before the close (`take_away`). `scan_units`: the packer scans each
        unit's barcode as it goes in.
        """
        self.scan(f"BADGE-{badge}")
        self.scan(f"{order_id}/{carton_id}")
        time.sleep(pause_s * 4)  # the manifest fetch
        self.scan(box_code)
        self.place(self.box_weight(box_code) + PAPERWORK_G)
        missing = list(leave_out)
        for sku in self.units_of(self.manifest(order_id, carton_id)):
            if sku in missing:
                missing.remove(sku)
                continue
            if scan_units:
                self.scan(self.catalog.items[sku].barcodes[0].code)
            self.add_unit(sku)
            time.sleep(pause_s)
        for sku in beside:
            self.leave_beside(sku)
            self.place(-self.unit_weight(sku))
        for sku in taken_away:
            self.take_away(sku)
            self.place(-self.unit_weight(sku))
        if taken_away:
            time.sleep(1.0)  # carried off; reports of its last reads have long arrived
        elif beside:
            time.sleep(0.3)  # the packer sets it down, then scans CLOSE
        self.close()
        return list(leave_out)

    def add_unit(self, sku: str) -> float:
        """One unit of `sku` goes into the carton (its tag too); returns the grams it added."""
        self._camera_put(sku)
        grams = self.unit_weight(sku)
        self.place(grams)
        self._tag_in_carton(sku)
        return grams

    def lift(self, sku: str) -> float:
        """The last unit of `sku` put in is lifted out again to rearrange it (its tag stays in
        reach, in the packer's hand): the weight steps down, the camera sees it gone. Returns
        the grams it took off."""
        self._camera_take(sku)
        grams = self.unit_weight(sku)
        self.place(-grams)
        return grams

    def set_down(self, sku: str, over: str | None = None) -> float:
        """The unit of `sku` lifted goes back in; with `over`, laid over the last unit of that
        SKU put in, hiding it from the camera. Returns the grams it added."""
        self._camera_put(sku, over)
        grams = self.unit_weight(sku)
        self.place(grams)
        return grams

    # -- the overhead camera -------------------------------------------------------------------

    def hand_over_carton(self, present: bool = True) -> None:
        """The packer's hand over the carton (or gone again), as the camera sees it."""
        self._show(self.scene.model_copy(update={"hand": present}))

    def plug_camera(self, plugged: bool = True) -> None:
        """The camera's cable in (or out: no frames at all until it is back)."""
        self._show(self.scene.model_copy(update={"unplugged": not plugged}))

    def _camera_put(self, sku: str, over: str | None = None) -> None:
        """The camera sees a unit go in, if the catalog says a camera can see that SKU; `over`:
        laid over the last unit of that SKU in view."""
        item = self.catalog.items[sku]
        if item.kind is not ItemKind.PRODUCT or not item.vision_visible:
            return
        gtin = next((b.code for b in item.barcodes if len(b.code) == 13), None)
        under = None
        if over is not None:
            under = max((i for i, u in enumerate(self.scene.units) if u.sku == over), default=None)
            if under is None:
                raise ValueError(f"no unit of {over} in the camera's view to lay {sku} over")
        units = (*self.scene.units, SceneUnit(sku=sku, gtin=gtin, over=under))
        self._show(self.scene.model_copy(update={"units": units}))

    def _camera_take(self, sku: str) -> None:
        units = list(self.scene.units)
        for i in range(len(units) - 1, -1, -1):  # the last one put in comes out
            if units[i].sku == sku:
                del units[i]
                self._show(self.scene.model_copy(update={"units": tuple(units)}))
                return

    def _show(self, scene: CameraScene) -> None:
        self.scene = scene
        if self.camera:
            write_scene(self.scene_path, scene)

    def close(self) -> None:
        self.scan("CLOSE")
