"""The scenario file format: the library parses, every mistake is named with its scenario and key
path, sizes are bounded, and no input (garbage bytes, random documents, mutated library files)
raises anything but ScenarioFileError."""

from __future__ import annotations

import argparse
import contextlib
import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.scenario.cli import check_command, scenario_files
from simulators.scenario.model import (
    MAX_STEPS,
    AddUnit,
    Close,
    ScenarioFileError,
    load_scenarios,
    parse_scenarios,
    scenarios_from_document,
)

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
FILE = LIBRARY / "fuzzed.toml"  # a name for in-memory documents; relative paths resolve in LIBRARY

MINIMAL = """
[[scenario]]
name = "minimal"
cartons = [{ ref = "ORD-1001/C1" }]
steps = [
  { do = "login" },
  { do = "scan_order", carton = "ORD-1001/C1" },
  { do = "scan_box", box = "BOX-S" },
  { do = "pack" },
  { do = "close", expect = "PASS" },
]
"""


def parse(text: str) -> list[Any]:
    return parse_scenarios(text.encode(), FILE)


def problem(text: str) -> str:
    with pytest.raises(ScenarioFileError) as raised:
        parse(text)
    return str(raised.value)


def test_every_library_file_parses() -> None:
    files = scenario_files([LIBRARY])
    assert len(files) >= 5
    for path in files:
        assert load_scenarios(path), path


def test_a_minimal_scenario_takes_defaults() -> None:
    [loaded] = parse(MINIMAL)
    scenario = loaded.scenario
    assert scenario.station.mode == "enforce" and scenario.station.channels == ["weight"]
    assert loaded.manifests[0].key == ("ORD-1001", "C1")
    assert isinstance(scenario.steps[-1], Close) and scenario.expect.events is None


def test_inline_cartons_and_a_relative_catalog() -> None:
    text = """
[[scenario]]
name = "inline"
station = { channels = ["weight", "rfid"], catalog = "catalog-apparel.json" }
cartons = [
  { order_id = "ORD-9", carton_id = "C1", lines = [
    { line_id = "1", sku = "TEE-BLACK-M", quantity = 2 },
  ] },
]
steps = [{ do = "add", sku = "TEE-BLACK-L", count = 2 }, { do = "close", expect = "BLOCK" }]
"""
    [loaded] = parse(text)
    assert loaded.catalog_path == LIBRARY / "catalog-apparel.json"
    assert loaded.manifests[0].version == 1
    assert loaded.scenario.steps[0] == AddUnit(do="add", sku="TEE-BLACK-L", count=2)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('{ do = "pack" }', '{ do = "pack", leave_ot = [] }'), "steps[3].leave_ot: Extra"),
        (('{ do = "pack" }', '{ do = "dance" }'), "steps[3]: Input tag 'dance'"),
        (('{ do = "pack" }', '{ do = "add" }'), "steps[3].sku: Field required"),
        (('{ do = "pack" }', '{ do = "add", sku = "NOPE" }'), "steps[3]: SKU NOPE is not"),
        (('expect = "PASS"', 'expect = "MAYBE"'), "steps[4].expect: Input should be"),
        (('{ ref = "ORD-1001/C1" }', '{ ref = "ORD-0/C1" }'), "cartons[0].ref: no manifest"),
        (('{ ref = "ORD-1001/C1" }', '{ ref = "ORD-1001" }'), "cartons[0].ref: String should"),
        (('box = "BOX-S"', 'box = "BOX-XL"'), "steps[2]: box BOX-XL is not in the catalog"),
        (('carton = "ORD-1001/C1" }', 'carton = "ORD-1002/C1" }'), "is not among the cartons"),
        (('{ do = "close", expect = "PASS" },', ""), "at least one close"),
        (('{ do = "pack" }', '{ do = "stray_tags", sku = "EAR-SILVER" }'), "need rfid"),
        (('name = "minimal"', 'name = "minimal"\nstation = { channels = ["rfid"] }'), "weight"),
        (('name = "minimal"', 'name = "minimal"\nstation = { catalog = "/dev/zero" }'), "regular"),
        (('{ do = "pack" }', '{ do = "unplug_camera" }'), "unplug_camera needs vision"),
        (('{ do = "pack" }', '{ do = "hand_over" }'), "hand_over needs vision"),
        (
            ('name = "minimal"', 'name = "minimal"\nstation = { backup_channels = ["vision"] }'),
            "station: required or backup channel(s) not wired: vision",
        ),
        (
            (
                'name = "minimal"',
                'name = "minimal"\nstation = { channels = ["weight", "vision"], '
                'required_channels = ["vision"], backup_channels = ["vision"] }',
            ),
            "backup_channels needs weight in required_channels and the camera not in them",
        ),
        (
            ('name = "minimal"', 'name = "minimal"\nstation = { backup_channels = ["rfid"] }'),
            "station.backup_channels[0]: Input should be 'vision'",
        ),
    ],
)
def test_mistakes_name_the_scenario_and_the_key_path(
    change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in MINIMAL
    message = problem(MINIMAL.replace(old, new, 1))
    assert message.startswith(f'{FILE}: scenario[0] "minimal": '), message
    assert expected in message, message


def test_event_expectations_must_fit_their_type() -> None:
    text = (
        MINIMAL
        + '[scenario.expect]\nevents = [{ type = "verification.result", state = "raised" }]\n'
    )
    message = problem(text)
    assert "expect.events[0]" in message and "carry no state" in message


def test_file_level_problems() -> None:
    assert "not valid TOML" in problem("[[scenario]\n")
    assert "scenario: Field required" in problem('title = "no scenarios"\n')
    assert "name used twice" in problem(MINIMAL + MINIMAL)
    with pytest.raises(ScenarioFileError, match="not UTF-8"):
        parse_scenarios(b'name = "\xff"', FILE)


def test_sizes_are_bounded(tmp_path: Path) -> None:
    steps = ", ".join(
        ['{ do = "scan", code = "X" }'] * MAX_STEPS + ['{ do = "close", expect = "PASS" }']
    )
    text = MINIMAL.split("steps = [")[0] + f"steps = [{steps}]\n"
    assert "steps: List should have at most 500 items" in problem(text)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ScenarioFileError, match="larger than"):
        load_scenarios(big)
    with pytest.raises(ScenarioFileError, match="cannot be read"):
        load_scenarios(tmp_path / "absent.toml")


# -- fuzzing ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_bytes_give_a_clean_error(raw: bytes) -> None:
    with contextlib.suppress(ScenarioFileError):
        parse_scenarios(raw, FILE)


SCALARS = st.one_of(
    st.none().map(lambda _: ""),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["login", "add", "close", "PASS", "BLOCK", "EAR-SILVER", "ORD-1001/C1", "rfid"]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "scenario",
                    "name",
                    "steps",
                    "do",
                    "sku",
                    "cartons",
                    "ref",
                    "expect",
                    "events",
                    "type",
                    "station",
                    "channels",
                    "x",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.just("scenario"), st.lists(DOCUMENTS, max_size=3), min_size=1))
def test_random_documents_give_a_clean_error(document: dict[str, Any]) -> None:
    with contextlib.suppress(ScenarioFileError):
        scenarios_from_document(document, FILE)


LIBRARY_DOCUMENTS = [tomllib.loads(path.read_text()) for path in scenario_files([LIBRARY])]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_library_files_load_or_give_a_clean_error(data: st.DataObject) -> None:
    document = copy.deepcopy(data.draw(st.sampled_from(LIBRARY_DOCUMENTS)))
    paths = [p for p in _leaves(document) if p]
    target = data.draw(st.sampled_from(paths))
    parent = document
    for key in target[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[target[-1]] = data.draw(DOCUMENTS)
    elif action == "delete":
        del parent[target[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8))] = data.draw(SCALARS)
    try:
        loaded = scenarios_from_document(document, FILE)
    except ScenarioFileError as exc:
        assert str(exc).startswith(str(FILE))
    else:
        assert loaded


def test_the_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(MINIMAL.replace('"PASS"', '"PAS"'))
    assert check_command(argparse.Namespace(files=[LIBRARY])) == 0
    assert "ok " in capsys.readouterr().out
    assert check_command(argparse.Namespace(files=[LIBRARY, broken])) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and "steps[4].expect" in err
