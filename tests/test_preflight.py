"""What a valid config refers to is checked before the station starts (`station.preflight`):
the example config copied beside its catalog and manifests, then broken one way at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from station.config_loader import ConfigError
from station.daemon import load_station_config
from station.preflight import preflight

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "station.example.toml"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example config in its own folder, with what it refers to, loaded from `/` (as a
    service is started): relative paths must still find the config's neighbours."""
    shutil.copy(EXAMPLE, tmp_path / "station.toml")
    shutil.copy(REPO / "config" / "catalog.example.json", tmp_path)
    shutil.copytree(REPO / "config" / "manifests", tmp_path / "manifests")
    monkeypatch.chdir("/")
    return tmp_path / "station.toml"


def problems(config_path: Path) -> dict[str, str]:
    return {p.key_path: p.message for p in preflight(load_station_config(config_path))}


def test_the_example_beside_its_files_has_nothing_to_fix(site: Path) -> None:
    assert problems(site) == {}


def test_a_missing_or_broken_catalog_is_named_with_what_to_do(site: Path) -> None:
    catalog = site.parent / "catalog.example.json"
    catalog.write_text('{"items": [')
    assert "not valid JSON" in problems(site)["catalog.path"]
    catalog.unlink()
    message = problems(site)["catalog.path"]
    assert str(catalog) in message and "export the catalog there" in message


def test_a_missing_manifest_folder_is_a_start_problem_not_unknown_orders(site: Path) -> None:
    shutil.rmtree(site.parent / "manifests")
    assert "does not exist: create it" in problems(site)["manifests.source.path"]


def test_the_broker_password_file_is_found_beside_the_config(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKSTATION__MQTT__USERNAME", "pack-01")
    monkeypatch.setenv("PACKSTATION__MQTT__PASSWORD_FILE", "mqtt-password")
    assert "copy the broker password file there" in problems(site)["mqtt.password_file"]
    (site.parent / "mqtt-password").write_text("s3cret\n")
    config = load_station_config(site)
    assert config.mqtt.password_file == site.parent / "mqtt-password"
    assert preflight(config) == []


def test_a_data_dir_below_a_file_is_named(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site.parent / "afile").write_text("")
    monkeypatch.setenv("PACKSTATION__STATION__DATA_DIR", "afile/pack-01")
    assert "is not a folder" in problems(site)["station.data_dir"]


def test_two_scanners_by_one_name_or_a_port_two_devices_share_are_refused(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = site.read_text()
    site.write_text(
        text + '\n[[scanners]]\ntype = "serial"\nname = "handheld"\nport = "/dev/ttyACM1"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_station_config(site)
    assert "scanner name used twice: handheld" in info.value.report()
    site.write_text(text)
    monkeypatch.setenv(
        "PACKSTATION__SCANNERS__0__PORT", "/dev/serial/by-id/usb-FTDI_scale-if00-port0"
    )
    with pytest.raises(ConfigError) as info:
        load_station_config(site)
    assert "one port, two devices" in info.value.report()
    assert "scale.port and scanners.0" in info.value.report()


def test_common_extras_the_scale_cannot_count_are_named_by_index(site: Path) -> None:
    text = site.read_text()
    typed = 'common_extras = ["MUG-BLUE", "MUG-BLEU", "CHEESE-FARM"]'
    assert "common_extras = []" in text
    site.write_text(text.replace("common_extras = []", typed, 1))
    found = problems(site)
    assert set(found) == {"weight.common_extras[1]", "weight.common_extras[2]"}, found
    assert (
        "MUG-BLEU is not in the catalog with a fixed unit weight"
        in found["weight.common_extras[1]"]
    )
