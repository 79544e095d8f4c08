"""The config loader: env overrides, key paths with lines, human sentences."""

from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from station.config_loader import ConfigError, apply_env_overrides, key_lines, load_config


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Serial(Strict):
    type: Literal["serial"]
    port: str
    baudrate: int = 9600


class Evdev(Strict):
    type: Literal["evdev"]
    device: str


class Broker(Strict):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    password: SecretStr | None = None


class Sample(Strict):
    broker: Broker
    scanners: list[Annotated[Serial | Evdev, Field(discriminator="type")]]


GOOD = """\
[broker]
host = "localhost"
port = 1883

[[scanners]]
type = "serial"
port = "/dev/ttyACM0"

[[scanners]]
type = "evdev"
device = "/dev/input/event3"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    config = load_config(Sample, write(tmp_path, GOOD))
    assert config.broker.host == "localhost"
    assert isinstance(config.scanners[1], Evdev)


def test_every_problem_has_key_path_line_and_sentence(tmp_path: Path) -> None:
    bad = (
        GOOD.replace('host = "localhost"', 'hots = "localhost"')
        .replace("port = 1883", "port = 99999")
        .replace("baudrate", "baud")
        .replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nbaud=1')
    )
    with pytest.raises(ConfigError) as info:
        load_config(Sample, write(tmp_path, bad))
    problems = {p.key_path: p for p in info.value.problems}
    assert problems["broker.hots"].line == 2
    assert "did you mean 'host'" in problems["broker.hots"].message
    assert problems["broker.host"].message == "this key is required but missing"
    assert problems["broker.port"].line == 3
    assert "99999" in problems["broker.port"].message
    assert problems["scanners.0.baud"].line == 8
    assert "did you mean 'baudrate'" in problems["scanners.0.baud"].message
    assert "line 2" in info.value.report()


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    text = GOOD.replace("port = 1883", "port = 1883\npassword = 12345678")
    with pytest.raises(ConfigError) as info:
        load_config(Sample, write(tmp_path, text))
    assert "12345678" not in info.value.report()


def test_invalid_toml_reports_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Sample, write(tmp_path, GOOD + "\nbroken = = 1\n"))
    assert info.value.problems[0].line == 13


def test_env_overrides_nested_keys_and_list_entries(tmp_path: Path) -> None:
    env = {
        "PACKSTATION__BROKER__PORT": "8883",
        "PACKSTATION__BROKER__PASSWORD": "s3cret",
        "PACKSTATION__SCANNERS__0__PORT": "/dev/ttyUSB9",
        "OTHER": "ignored",
    }
    config = load_config(Sample, write(tmp_path, GOOD), env)
    assert config.broker.port == 8883
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == "s3cret"
    assert config.scanners[0].port == "/dev/ttyUSB9"


def test_a_bad_value_from_the_environment_names_the_variable_not_the_file_line(
    tmp_path: Path,
) -> None:
    env = {"PACKSTATION__BROKER__PORT": "99999", "PACKSTATION__SCANNERS__1__DEVICE": "7"}
    with pytest.raises(ConfigError) as info:
        load_config(Sample, write(tmp_path, GOOD), env)
    problems = {p.key_path: p for p in info.value.problems}
    assert problems["broker.port"].line is None  # line 3 holds the file's valid 1883
    assert problems["broker.port"].message.endswith(
        "(got 99999); set by the environment variable PACKSTATION__BROKER__PORT, not by the file"
    )
    assert "PACKSTATION__SCANNERS__1__DEVICE" in problems["scanners.1.device"].message


def test_env_override_of_missing_list_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        apply_env_overrides({"scanners": []}, {"PACKSTATION__SCANNERS__3__PORT": "x"})


def test_a_secret_from_the_environment_is_taken_as_written() -> None:
    """An all-digit password is a password: parsed as TOML it would be a number and refused."""
    data: dict = {"broker": {"host": "h"}}
    apply_env_overrides(data, {"PACKSTATION__BROKER__PASSWORD": "20240601"})
    assert data["broker"]["password"] == "20240601"


def test_an_environment_key_below_a_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        apply_env_overrides({"broker": {"host": "h"}}, {"PACKSTATION__BROKER__HOST__X": "1"})
    assert "broker.host is a value, not a table" in info.value.report()


def test_a_header_value_is_never_echoed(tmp_path: Path) -> None:
    class WithHeaders(Strict):
        headers: dict[str, str] = {}

    text = 'headers = "Authorization: Bearer SUPERSECRET-WMS-TOKEN"\n'
    with pytest.raises(ConfigError) as info:
        load_config(WithHeaders, write(tmp_path, text))
    assert "SUPERSECRET" not in info.value.report() and "headers" in info.value.report()


def test_an_entry_without_its_kind_is_told_which_key_names_it(tmp_path: Path) -> None:
    text = GOOD.replace('type = "evdev"\n', "")
    with pytest.raises(ConfigError) as info:
        load_config(Sample, write(tmp_path, text))
    (problem,) = info.value.problems
    assert problem.key_path == "scanners.1" and "has no 'type' key" in problem.message


def test_key_lines_tracks_tables_and_arrays() -> None:
    lines = key_lines(GOOD)
    assert lines["broker.port"] == 3
    assert lines["scanners.1.device"] == 11


@given(st.text(max_size=300))
def test_key_lines_never_raises_on_any_text(text: str) -> None:
    key_lines(text)


def test_a_plain_pin_typed_into_a_pin_hash_is_not_echoed(tmp_path: Path) -> None:
    class Reviewer(Strict):
        badge: str
        pin_hash: str = Field(pattern=r"^scrypt\$")

    class WithReviewers(Strict):
        reviewers: list[Reviewer]

    path = tmp_path / "r.toml"
    path.write_text('[[reviewers]]\nbadge = "LEAD"\npin_hash = "4821"\n')
    with pytest.raises(ConfigError) as info:
        load_config(WithReviewers, path)
    assert "4821" not in info.value.report()
    assert "reviewers.0.pin_hash (line 3)" in info.value.report()
