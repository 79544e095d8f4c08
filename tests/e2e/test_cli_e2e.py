"""The `packstation` console commands as an operator runs them: a fresh interpreter each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "config" / "station.example.toml"


def packstation(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("PACKSTATION__")}
    return subprocess.run(
        [sys.executable, "-m", "station.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_config_accepts_the_example_with_a_summary() -> None:
    result = packstation("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "station dc-north/pack-01: OK (shadow mode)" in result.stdout
    assert "mtsics" in result.stdout and "MQTT 5" in result.stdout


def test_check_config_names_a_typo_with_its_key_path_and_line(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text().splitlines()
    [index] = [i for i, line in enumerate(lines) if line.startswith("poll_interval_s")]
    lines[index] = lines[index].replace("poll_interval_s", "pol_interval_s")
    typo = tmp_path / "station.toml"
    typo.write_text("\n".join(lines) + "\n")

    result = packstation("check-config", str(typo))

    assert result.returncode == 2
    assert f"scale.pol_interval_s (line {index + 1})" in result.stderr
    assert "poll_interval_s" in result.stderr  # the suggestion
    assert "OK" not in result.stdout


def test_config_schema_is_a_valid_json_schema_the_example_satisfies() -> None:
    result = packstation("config-schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = tomllib.loads(EXAMPLE.read_text())
    jsonschema.Draft202012Validator(schema).validate(example)
    typo = {**example, "scale": {**example["scale"], "pol_interval_s": 0.1}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(typo)


def test_output_piped_into_a_reader_that_stops_early_ends_quietly() -> None:
    """`packstation config-schema | head`: the schema (over 100 kB) outgrows the pipe's buffer,
    so the reader closing after a few bytes breaks the write; no traceback on the terminal."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    schema = subprocess.Popen(
        [sys.executable, "-m", "station.cli", "config-schema"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert schema.stdout is not None and schema.stderr is not None
    assert schema.stdout.read(1) == b"{"
    schema.stdout.close()
    err = schema.stderr.read().decode()
    assert schema.wait(timeout=30) == 1
    assert err == ""
