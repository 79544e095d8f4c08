"""The vision channel inside the station: its config, the simulated camera's scene file, and the
channel adapter in-process with the real model (insertions, an item taken out, camera down)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scale.config import MtSicsScaleConfig
from scale.readings import ScaleStatus, WeightReading
from simulators.camera import PlacedItem
from simulators.camera_scene import CameraScene, SceneUnit, read_scene, write_scene
from simulators.rig import EXAMPLE_CATALOG
from station.catalog_file import load_catalog
from station.channels.base import ChannelContext
from station.channels.vision import CAMERA, INFERENCE_SECONDS, VisionEvidenceChannel
from station.channels.weight import WeightChannel, WeightStep
from station.clock import SystemClock
from station.config import StationConfig, station_policy
from station.config_loader import ConfigError, load_config
from station.domain import Manifest, expected_units
from station.metrics import Metrics
from station.session import CartonView, CollectEvidence, FetchManifest
from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)
from station.weight_check import WeightCheckConfig
from vision.config import DEFAULT_MODEL, SimulatorSourceConfig, VisionConfig
from vision.sources import SimulatorSource

CATALOG = load_catalog(EXAMPLE_CATALOG)
EXAMPLE = EXAMPLE_CATALOG.parent / "station.example.toml"
MUG, EAR, BOOK, FLYER = "MUG-BLUE", "EAR-SILVER", "BOOK-COOK", "FLYER-SPRING"
needs_model = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="model not committed")


def manifest(order_id: str, skus: tuple[str, ...] = (MUG, EAR)) -> Manifest:
    lines = [{"line_id": str(n), "sku": sku, "quantity": 1} for n, sku in enumerate(skus, 1)]
    return Manifest.model_validate(
        {"order_id": order_id, "carton_id": "C1", "version": 1, "lines": lines}
    )


# -- config ----------------------------------------------------------------------------------


def test_the_example_configs_commented_vision_section_is_valid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    block = text[text.index("# [vision]") : text.index("# RFID (optional")]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    advisory = text.replace("advisory_channels = []", 'advisory_channels = ["vision"]')
    (tmp_path / "station.toml").write_text(advisory + "\n" + uncommented)
    config = load_config(StationConfig, tmp_path / "station.toml", {})
    assert config.vision is not None and config.vision.source.type == "v4l2"
    assert config.vision.privacy_masks[0].name == "packer side"
    assert config.policy.advisory_channels == ["vision"]


def test_the_policy_names_only_configured_channels_and_never_one_both_ways(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.read_text()
    required = text.replace('required_channels = ["weight"]', 'required_channels = ["vision"]')
    (tmp_path / "required.toml").write_text(required)
    with pytest.raises(ConfigError) as missing:
        load_config(StationConfig, tmp_path / "required.toml", {})
    assert "no [vision] section" in missing.value.report()
    vision = '\n[vision.source]\ntype = "simulator"\n'
    both = required.replace("advisory_channels = []", 'advisory_channels = ["vision"]')
    (tmp_path / "both.toml").write_text(both + vision)
    with pytest.raises(ConfigError) as both_ways:
        load_config(StationConfig, tmp_path / "both.toml", {})
    assert "vision both required and advisory" in both_ways.value.report()


def test_a_backup_channel_must_be_configured_and_nothing_else(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    backup = text.replace("backup_channels = []", 'backup_channels = ["vision"]')
    (tmp_path / "backup.toml").write_text(backup)
    with pytest.raises(ConfigError) as missing:
        load_config(StationConfig, tmp_path / "backup.toml", {})
    assert "policy.backup_channels names vision but there is no [vision]" in missing.value.report()
    vision = '\n[vision.source]\ntype = "simulator"\n'
    (tmp_path / "ok.toml").write_text(backup + vision)
    policy = station_policy(load_config(StationConfig, tmp_path / "ok.toml", {}))
    assert policy.backup == {"vision"} and policy.required_channels == {"weight"}
    both = backup.replace('required_channels = ["weight"]', 'required_channels = ["vision"]')
    (tmp_path / "both.toml").write_text(both + vision)
    with pytest.raises(ConfigError) as both_ways:
        load_config(StationConfig, tmp_path / "both.toml", {})
    assert "vision both required and backup" in both_ways.value.report()
    unweighed = backup.replace('required_channels = ["weight"]', "required_channels = []")
    (tmp_path / "unweighed.toml").write_text(unweighed + vision)
    with pytest.raises(ConfigError) as no_scale:
        load_config(StationConfig, tmp_path / "unweighed.toml", {})
    assert "backup_channels needs weight in required_channels" in no_scale.value.report()
    rfid = text.replace("backup_channels = []", 'backup_channels = ["rfid"]')
    (tmp_path / "rfid.toml").write_text(rfid)
    with pytest.raises(ConfigError) as not_a_count:
        load_config(StationConfig, tmp_path / "rfid.toml", {})
    assert "policy.backup_channels" in not_a_count.value.report()


def test_relative_vision_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    config = VisionConfig.model_validate(
        {
            "source": {"type": "simulator", "scene_file": "scene.json"},
            "detector": {"type": "counter", "model": "models/site.onnx"},
            "evidence_dir": "frames",
        }
    ).resolve_paths(tmp_path)
    assert config.source.scene_file == tmp_path / "scene.json"  # type: ignore[union-attr]
    assert config.detector.model == tmp_path / "models" / "site.onnx"
    assert config.evidence_dir == tmp_path / "frames"
    default = VisionConfig.model_validate({"source": {"type": "v4l2"}}).resolve_paths(tmp_path)
    assert default.detector.model == DEFAULT_MODEL  # absolute: unchanged


# -- the simulated camera's scene file --------------------------------------------------------


def test_a_scene_written_is_the_scene_read(tmp_path: Path) -> None:
    scene = CameraScene(carton=3, units=(SceneUnit(sku=MUG, gtin="4006381333931"),), hand=True)
    write_scene(tmp_path / "scene.json", scene)
    assert read_scene(tmp_path / "scene.json") == scene
    assert read_scene(tmp_path / "missing.json") is None


@given(st.binary(max_size=2_000))
def test_any_bytes_in_the_scene_file_read_as_a_scene_or_nothing(tmp_path_factory, raw) -> None:
    path = tmp_path_factory.mktemp("scene") / "scene.json"
    path.write_bytes(raw)
    assert read_scene(path) is None or isinstance(read_scene(path), CameraScene)


@given(st.dictionaries(st.sampled_from(["carton", "units", "hand", "x"]), st.integers(-2, 3)))
def test_scene_json_of_the_wrong_shape_is_nothing(tmp_path_factory, fields) -> None:
    path = tmp_path_factory.mktemp("scene") / "scene.json"
    path.write_text(json.dumps(fields))
    scene = read_scene(path)
    valid = set(fields) <= {"carton"} and fields.get("carton", 0) >= 0
    assert (scene is not None) == valid


def test_a_unit_lies_only_over_one_put_in_before_it(tmp_path: Path) -> None:
    """The rig lays a unit over an earlier one (`set_down(over=...)`); a scene naming itself or a
    later unit is no scene."""
    over = CameraScene(units=(SceneUnit(sku=MUG), SceneUnit(sku=BOOK, over=0)))
    write_scene(tmp_path / "scene.json", over)
    assert read_scene(tmp_path / "scene.json") == over
    for itself_or_later in (1, 2):
        units = [{"sku": MUG}, {"sku": BOOK, "over": itself_or_later}, {"sku": EAR}]
        (tmp_path / "scene.json").write_text(json.dumps({"units": units}))
        assert read_scene(tmp_path / "scene.json") is None


def test_an_unplugged_camera_delivers_no_frames_until_plugged_back(tmp_path: Path) -> None:
    """The scenario runner's `unplug_camera`: the simulator source gives nothing (the grabber
    then finds the camera down, as with a cable out), and the same carton once plugged back."""
    path = tmp_path / "scene.json"
    config = SimulatorSourceConfig(type="simulator", scene_file=path, interval_s=0, seed=3)
    source = SimulatorSource(config)
    scene = CameraScene(units=(SceneUnit(sku=MUG),))
    write_scene(path, scene)
    plugged = source.read()
    assert plugged is not None
    write_scene(path, scene.model_copy(update={"unplugged": True}))
    assert source.read() is None
    write_scene(path, scene)
    again = source.read()
    assert again is not None and (again == plugged).all()


def test_an_oversized_scene_file_is_nothing(tmp_path: Path) -> None:
    path = tmp_path / "scene.json"
    path.write_text('{"carton": 1, "units": []' + " " * 70_000 + "}")
    assert read_scene(path) is None


# -- the channel adapter, in-process with the real model ---------------------------------------


class Station:
    """A vision channel as the daemon builds it, with the loop's hand-overs run inline."""

    def __init__(self, config: VisionConfig, tmp_path: Path, source: object = None) -> None:
        self.health: list[tuple[str, bool, str]] = []
        self.open: CartonView | None = None  # the session's open carton, once its order is in
        context = ChannelContext(
            clock=SystemClock(),
            catalog=CATALOG,
            call_soon=lambda work: work(),
            report_health=lambda device, up, detail: self.health.append((device, up, detail)),
            is_down=lambda _device: False,
            is_idle=lambda: False,
            open_carton=lambda: self.open,
        )
        scale = MtSicsScaleConfig(protocol="mtsics", port="/dev/null")
        self.weight = WeightChannel(scale, WeightCheckConfig(), context)
        self.channel = VisionEvidenceChannel(
            config,
            tmp_path,
            context,
            self.weight,
            source=source,  # type: ignore[arg-type]
        )
        self.metrics = Metrics()
        self.channel.attach_metrics(self.metrics)

    def wait_for_health(self, up: bool, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(h[:2] == (CAMERA, up) for h in self.health):
            assert time.monotonic() < deadline, self.health
            time.sleep(0.02)

    def order_in(self, order_id: str, skus: tuple[str, ...]) -> None:
        """The order opened and its manifest in, as the session would show it."""
        self.channel.on_effect(FetchManifest(order_id, "C1"))
        order = manifest(order_id, skus)
        units = expected_units(order, CATALOG)
        self.open = CartonView(order_id, "C1", order, None, 1, {}, units, None)

    async def close(self, order_id: str, skus: tuple[str, ...] = (MUG, EAR)) -> ChannelReport:
        request = CollectEvidence(1, CATALOG.boxes["BOX-S"], manifest(order_id, skus))
        now = time.monotonic()
        return await self.channel.collect(request, now, now + 8.0)


def step(to_g: float, from_g: float = 0.0) -> WeightStep:
    return WeightStep(from_g, to_g, time.monotonic())


def pack_on_the_simulator(
    tmp_path: Path, pack: Callable[[Station, SimulatorSource], Awaitable[ChannelReport]]
) -> tuple[Station, ChannelReport]:
    """Run `pack` against a started channel whose camera renders `source.sequence`."""
    config = VisionConfig.model_validate(
        {"source": {"type": "simulator", "seed": 31, "interval_s": 0.02}, "capture_timeout_s": 3}
    )
    source = SimulatorSource(config.source)  # type: ignore[arg-type]
    station = Station(config, tmp_path, source)
    station.channel.start()
    try:
        station.wait_for_health(up=True)
        return station, asyncio.run(pack(station, source))
    finally:
        station.channel.stop()


@needs_model
def test_insertions_are_counted_and_the_record_carries_model_and_frames(tmp_path: Path) -> None:
    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        station.channel.on_weight_step(step(300))  # before any order: nobody's carton
        station.channel.on_effect(FetchManifest("ORD-9", "C1"))
        source.sequence.insert(MUG)
        station.channel.on_weight_step(step(712, 300))
        return await station.close("ORD-9")  # the earring never went in

    station, report = pack_on_the_simulator(tmp_path, pack)
    channel = station.channel
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.DEFICIT
    assert report.measurements["frames"] == 2  # the insertion's and the close's
    assert report.measurements["items_counted"] == 1
    assert report.provenance["model_sha256"] == channel.camera.model_info.sha256
    assert report.provenance["model_version"].startswith("item_counter")
    assert len(report.files) == 2
    for file in report.files:
        assert Path(file.path).is_relative_to(
            tmp_path / "evidence" / "images" / "ORD-9" / "C1" / "attempt-1"
        )
    latest = channel.latest_frame()
    assert latest is not None and latest[1] == report.files[1].sha256
    assert f"{INFERENCE_SECONDS}_count 2" in station.metrics.render()


@needs_model
def test_the_screen_frame_follows_each_insertion_and_never_outlives_into_the_next_carton(
    tmp_path: Path,
) -> None:
    shown: dict[str, tuple[bytes, str] | None] = {}

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        channel = station.channel
        channel.on_effect(FetchManifest("ORD-9", "C1"))
        shown["opened"] = channel.latest_frame()
        source.sequence.insert(MUG)
        channel.on_weight_step(step(712, 300))
        for _ in range(300):  # the insertion's frame, counted and encoded for the screen
            if channel.latest_frame() is not None:
                break
            await asyncio.sleep(0.02)
        shown["insertion"] = channel.latest_frame()
        report = await station.close("ORD-9")
        shown["closed"] = channel.latest_frame()
        channel.on_effect(FetchManifest("ORD-10", "C1"))
        shown["next carton"] = channel.latest_frame()
        return report

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert shown["opened"] is None
    insertion = shown["insertion"]
    assert insertion is not None and insertion[0][:3] == b"\xff\xd8\xff"  # a JPEG
    assert insertion[1] == hashlib.sha256(insertion[0]).hexdigest()
    # At close: the close's evidence frame (captioned with vision's conclusion), not a preview.
    assert shown["closed"] is not None and shown["closed"][1] == report.files[-1].sha256
    assert shown["closed"][1] != insertion[1]
    assert shown["next carton"] is None


@needs_model
def test_an_item_taken_out_makes_the_count_not_applicable(tmp_path: Path) -> None:
    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        station.channel.on_effect(FetchManifest("ORD-9", "C1"))
        source.sequence.insert(MUG)
        station.channel.on_weight_step(step(712, 300))
        station.channel.on_weight_step(step(300, 712))  # the mug comes out again
        return await station.close("ORD-9")

    _station, report = pack_on_the_simulator(tmp_path, pack)
    # Not a count: UNSURE, so a station that requires vision holds the carton.
    assert report.state is ChannelState.UNSURE and report.discrepancy is Discrepancy.NONE
    assert [r.code for r in report.reasons] == ["vision_not_applicable"]
    assert "taken out" in report.reasons[0].message
    assert report.finding_for(MUG).status is FindingStatus.NOT_APPLICABLE  # type: ignore[union-attr]


def take_the_mug_out_and_back(
    skus: tuple[str, ...], closes: list[ChannelReport]
) -> Callable[[Station, SimulatorSource], Awaitable[ChannelReport]]:
    """The mug goes in, comes out (a close meanwhile, into `closes`) and goes back; the rest of
    the order `skus` never goes in."""

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        station.channel.on_effect(FetchManifest("ORD-9", "C1"))
        source.sequence.insert(MUG)
        station.channel.on_weight_step(step(712, 300))
        await frames_counted(station, 1)
        station.channel.on_weight_step(step(300, 712))  # the mug comes out...
        closes.append(await station.close("ORD-9", skus))
        station.channel.on_weight_step(step(713, 300))  # ...and goes back (within the error)
        return await station.close("ORD-9", skus)

    return pack


@needs_model
def test_an_item_taken_out_and_put_back_leaves_the_count_applicable(tmp_path: Path) -> None:
    """Packers take a unit out to rearrange it: when the weight comes back to its level the
    count goes on (it used to stay not applicable, and a station requiring vision held the
    carton). A close while the item is out is not applicable; put back, the next close counts.
    (That the item set down elsewhere adds nothing: tests/vision/test_take_outs.py.)"""
    closes: list[ChannelReport] = []
    _station, report = pack_on_the_simulator(
        tmp_path, take_the_mug_out_and_back((MUG, BOOK), closes)
    )
    assert closes[0].state is ChannelState.UNSURE
    assert "taken out (412 g) and not put back" in closes[0].reasons[0].message
    assert closes[0].measurements["frames"] == 2  # the insertion's and the close's: no stand-in
    detail = closes[0].finding_for(MUG).detail  # type: ignore[union-attr]
    assert detail.startswith("vision could not count the carton: an item was taken out")
    # The book never went in: one item short, counted.
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.DEFICIT
    assert report.measurements["put_back_frames"] == 1
    assert report.measurements["frames"] == 4  # insertion, close, put back, close
    assert report.measurements["items_counted"] == 1


@needs_model
def test_a_put_back_cannot_stand_over_a_hidden_unit_light_enough_to_go_out_unseen(
    tmp_path: Path,
) -> None:
    """The 8 g earrings go in and the mug is set down over them; then the mug comes out and
    goes back. At 5 g divisions the weights cannot tell 20 g apart around the mug, so the
    hidden earrings could have been lifted out under it and left out while the count still
    reached the order: not applicable. With both in view the same put-back stands (the
    earrings gone would leave the frame after one item short): the test above, with the book."""

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        channel, scene = station.channel, source.sequence.scene
        channel.on_effect(FetchManifest("ORD-9", "C1"))
        source.sequence.insert(EAR)
        channel.on_weight_step(step(308, 300))
        await frames_counted(station, 1)
        source.sequence.insert(MUG)
        ear, mug = scene.items
        # Over the earrings, its centre 40 px off theirs (nearer, it may pass for them).
        over = (ear.center[0] + 40 / 640, ear.center[1])
        scene.items[1] = dataclasses.replace(mug, center=over, scale=1.15, angle=0)
        channel.on_weight_step(step(720, 308))
        await frames_counted(station, 2)
        channel.on_weight_step(step(308, 720))  # the mug comes out...
        channel.on_weight_step(step(721, 308))  # ...and goes back
        return await station.close("ORD-9", (MUG, EAR))

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert report.state is ChannelState.UNSURE
    assert "EAR-SILVER (6 g at the least) could have been lifted out" in report.reasons[0].message


@needs_model
def test_an_item_set_down_over_another_is_told_from_it_by_its_look(tmp_path: Path) -> None:
    """The book set down again squarely over the mug hides it: its frame shows one item where
    two were, in the mug's place. The look there changed (the book's, not the mug's), so the
    book lies over the mug: the put-back stands at once, no second look asked (the mug is far
    too heavy to have gone out under the book unseen)."""
    asked: list[float | None] = []

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        await put_the_book_back_over_the_mug(station, source)
        asked.append(station.channel.second_look_g())
        return await station.close("ORD-9", (MUG, BOOK))

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert asked == [None]
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.NONE
    assert report.measurements["put_back_frames"] == 1
    assert report.measurements["items_counted"] == 2


@needs_model
def test_before_the_order_is_in_no_frame_takes_an_item_for_hidden(tmp_path: Path) -> None:
    """The same put-back while the session has no manifest yet: no weights can vouch for a
    frame that hides an item, so the second look is asked for at once."""
    asked: list[float | None] = []

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        await put_the_book_back_over_the_mug(station, source, manifest_in=False)
        asked.append(station.channel.second_look_g())
        return await station.close("ORD-9", (MUG, BOOK))

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert asked == [690]
    assert report.state is ChannelState.UNSURE


@needs_model
def test_an_item_set_down_over_another_is_counted_after_a_second_look(tmp_path: Path) -> None:
    """The book (packed like the mug: they look alike) set down again over the mug hides it:
    its frame shows one item where two were, and nothing tells the book lying over the mug
    from the book back in place and the mug gone, so the count is not applicable and the
    packer's screen asks for a second look at the book's weight. Lifted again and set down
    where it was, the frame shows both: counted."""
    asked: list[float | None] = []

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        channel = station.channel
        source.sequence.look_alike(BOOK, MUG)
        book = await put_the_book_back_over_the_mug(station, source)
        asked.append(channel.second_look_g())
        channel.on_weight_step(step(711, 1401))  # lifted again...
        source.sequence.scene.items[1] = book
        channel.on_weight_step(step(1402, 711))  # ...and set down beside
        await frames_counted(station, 4)
        asked.append(channel.second_look_g())
        return await station.close("ORD-9", (MUG, BOOK))

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert asked == [690, None]
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.NONE
    assert report.measurements["put_back_frames"] == 2
    assert report.measurements["items_counted"] == 2


@needs_model
def test_a_take_out_before_the_insertion_was_framed_cannot_be_put_back(tmp_path: Path) -> None:
    """The mug comes out and goes back before its insertion's frame was taken: that frame may
    show it set down elsewhere (counted as new), so its coming back proves nothing."""

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        station.channel.on_effect(FetchManifest("ORD-9", "C1"))
        source.sequence.insert(MUG)
        station.channel.on_weight_step(step(712, 300))  # its frame still to be taken...
        station.channel.on_weight_step(step(300, 712))  # ...when the mug comes out
        station.channel.on_weight_step(step(712, 300))  # and goes back
        return await station.close("ORD-9")

    _station, report = pack_on_the_simulator(tmp_path, pack)
    assert report.state is ChannelState.UNSURE
    assert "not put back" in report.reasons[0].message
    assert "put_back_frames" not in report.measurements


async def put_the_book_back_over_the_mug(
    station: Station, source: SimulatorSource, manifest_in: bool = True
) -> PlacedItem:
    """The mug, then the book go in; the book comes out and goes back squarely over the mug,
    larger than it (hiding it). The book as it was first set down. `manifest_in`: the order's
    manifest has reached the session (else only its label was scanned)."""
    channel, scene = station.channel, source.sequence.scene
    if manifest_in:
        station.order_in("ORD-9", (MUG, BOOK))
    else:
        channel.on_effect(FetchManifest("ORD-9", "C1"))
    source.sequence.insert(MUG)
    channel.on_weight_step(step(712, 300))
    source.sequence.insert(BOOK)
    channel.on_weight_step(step(1402, 712))
    await frames_counted(station, 2)
    mug, book = scene.items
    channel.on_weight_step(step(712, 1402))  # the book comes out...
    scene.items[1] = dataclasses.replace(book, center=mug.center, scale=1.15)
    channel.on_weight_step(step(1401, 712))  # ...and goes back over the mug
    await frames_counted(station, 3)
    return book


async def frames_counted(station: Station, n: int, reading_g: float | None = None) -> None:
    """Until the channel has counted `n` frames of the carton (the camera runs on threads),
    the scale reading `reading_g` all the while, if given (a scale streams its readings)."""
    for _ in range(500):
        if len(station.channel.camera.accumulator.observations) >= n:
            return
        if reading_g is not None:
            feed(station, reading_g)
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {n} frames counted in 10 s")


@needs_model
def test_a_camera_that_is_down_reports_down_at_once_and_fails_closed_only_if_required(
    tmp_path: Path,
) -> None:
    config = VisionConfig.model_validate(
        {
            "source": {"type": "folder", "path": str(tmp_path / "no-camera")},
            "capture_timeout_s": 10,
        }
    )
    station = Station(config, tmp_path)
    channel = station.channel
    channel.start()
    try:
        station.wait_for_health(up=False)
        channel.on_effect(FetchManifest("ORD-9", "C1"))
        started = time.monotonic()
        report = asyncio.run(station.close("ORD-9"))
        took = time.monotonic() - started
    finally:
        channel.stop()
    assert report.state is ChannelState.DOWN
    assert "no-camera" in report.reasons[0].message  # names the source that failed
    assert took < 5  # far below capture_timeout_s: a dead camera is not waited for
    # Suppose the weight vouches for both SKUs on its own (heavy enough to see).
    findings = tuple(SkuFinding(s, FindingStatus.CONFIRMED, 1, 1, 1.0) for s in (MUG, EAR))
    weight = ChannelReport("weight", ChannelState.OK, findings)

    def outcome(policy: VerificationPolicy) -> Outcome:
        return policy.decide({MUG: 1, EAR: 1}, [weight, report]).outcome

    assert outcome(VerificationPolicy(frozenset({"weight", "vision"}))) is Outcome.REVIEW
    assert outcome(VerificationPolicy(frozenset({"weight"}))) is Outcome.PASS
    advisory = VerificationPolicy(frozenset({"weight"}), advisory=frozenset({"vision"}))
    assert outcome(advisory) is Outcome.PASS


def test_a_missing_model_is_refused_at_start_naming_the_file(tmp_path: Path) -> None:
    config = VisionConfig.model_validate(
        {"source": {"type": "v4l2"}, "detector": {"type": "counter", "model": "gone.onnx"}}
    ).resolve_paths(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"gone\.onnx.*\[vision\.detector\] model"):
        Station(config, tmp_path)


@needs_model
def test_a_unit_set_down_squarely_over_another_is_counted_when_its_step_is_a_units(
    tmp_path: Path,
) -> None:
    """The earrings go in, then the mug squarely over them: its frame shows one item, in the
    earrings' place, as before. The mug's 412 g step is too heavy for the paperwork and fill, so
    a unit went in, and the changed look there is it (`InsertionAccumulator._stacked`). The same
    frame after a step too light for any unit (this site states no paperwork or fill, and the
    earrings weigh 6 g at the least: 4 g, within the readings' errors) counts nothing new."""
    _station, report = pack_on_the_simulator(tmp_path, mug_squarely_over_the_earrings(720))
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.NONE
    assert report.measurements["items_counted"] == 2
    _station, light = pack_on_the_simulator(tmp_path, mug_squarely_over_the_earrings(312))
    assert light.discrepancy is Discrepancy.DEFICIT and light.measurements["items_counted"] == 1
    # Another step before the mug's frame is taken: that frame may show more than the mug's
    # step, so its changed look counts nothing either.
    _station, late = pack_on_the_simulator(tmp_path, mug_squarely_over_the_earrings(720, 760))
    assert late.discrepancy is Discrepancy.DEFICIT and late.measurements["items_counted"] == 1


@needs_model
def test_a_flyer_lying_over_a_unit_is_not_a_second_unit_where_the_step_brought_one(
    tmp_path: Path,
) -> None:
    """Two mugs are ordered. The second goes in with the spring flyer lying partly over it: the
    camera sees two items over one another, but the settled step (a mug and the flyer, 416 g)
    is too light for two mugs, so they are one unit (`InsertionAccumulator.add`'s
    `most_units`). Where the platter moves again before that frame is counted, the step no
    longer bounds what the frame shows: the flyer counts as an item."""
    _station, report = pack_on_the_simulator(tmp_path, mug_with_a_flyer_over_it(moved=False))
    assert report.state is ChannelState.OK and report.discrepancy is Discrepancy.NONE
    assert report.measurements["items_counted"] == 2
    _station, moved = pack_on_the_simulator(tmp_path, mug_with_a_flyer_over_it(moved=True))
    assert moved.discrepancy is Discrepancy.SURPLUS and moved.measurements["items_counted"] == 3
    # The first mug already on the platter when the order opened: the carton's first frame
    # shows it new too, which its step did not bring, so that step bounds nothing.
    _station, early = pack_on_the_simulator(tmp_path, mug_with_a_flyer_over_it(False, early=True))
    assert early.discrepancy is Discrepancy.SURPLUS and early.measurements["items_counted"] == 3


def mug_with_a_flyer_over_it(
    moved: bool, early: bool = False
) -> Callable[[Station, SimulatorSource], Awaitable[ChannelReport]]:
    """A mug, then a mug with the flyer partly over it, each step settled on the scale (and,
    if `moved`, the platter unsettled again at once, before the second frame is counted; if
    `early`, the first mug set down before the order opened)."""

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        scene = source.sequence.scene
        if not early:
            station.order_in("ORD-9", (MUG, MUG))
        source.sequence.insert(MUG)
        await settle(station, 412)
        if early:
            station.order_in("ORD-9", (MUG, MUG))
        else:
            await frames_counted(station, 1, reading_g=412)
        source.sequence.insert(MUG)
        source.sequence.insert(FLYER)
        mug, flyer = scene.items[1:]
        scene.items[2] = dataclasses.replace(flyer, center=(mug.center[0] + 0.07, mug.center[1]))
        await settle(station, 828)
        frames = 1 if early else 2
        await frames_counted(station, frames, reading_g=905 if moved else 828)
        return await station.close("ORD-9", (MUG, MUG))

    return pack


def feed(station: Station, grams: float) -> None:
    """One reading from the scale, now (as its driver hands it to the loop)."""
    reading = WeightReading(grams, device_stable=True, status=ScaleStatus.OK)
    station.weight._on_reading(reading, time.monotonic())


async def settle(station: Station, grams: float) -> None:
    """The scale reads `grams` until the weight channel sees it settled (a step, if it moved)."""
    for _ in range(100):
        feed(station, grams)
        if station.weight.settled_at_level() and abs(station.weight.level_g - grams) < 0.5:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the scale did not settle at {grams} g in 5 s")


def mug_squarely_over_the_earrings(
    level_g: float, then_g: float | None = None
) -> Callable[[Station, SimulatorSource], Awaitable[ChannelReport]]:
    """The earrings go in, then the mug squarely over them, the platter settling at `level_g`
    (and at once at `then_g`, something more going in before the mug's frame is taken)."""

    async def pack(station: Station, source: SimulatorSource) -> ChannelReport:
        channel, scene = station.channel, source.sequence.scene
        station.order_in("ORD-9", (MUG, EAR))  # the carton's weights: the mug is a unit
        source.sequence.insert(EAR)
        channel.on_weight_step(step(308, 300))
        await frames_counted(station, 1)
        source.sequence.insert(MUG)
        ear, mug = scene.items
        scene.items[1] = dataclasses.replace(mug, center=ear.center, scale=1.15, angle=0)
        channel.on_weight_step(step(level_g, 308))
        if then_g is not None:
            channel.on_weight_step(step(then_g, level_g))
        await frames_counted(station, 3 if then_g is not None else 2)
        return await station.close("ORD-9", (MUG, EAR))

    return pack
