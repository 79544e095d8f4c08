"""`packstation weights report|export` against a real store file and the example config."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from station.cli import main
from station.learning.estimator import WeightSample
from station.learning.store import FILE_NAME, LearnedWeightStore, Subject

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The example config with its data dir and catalog in tmp_path."""
    text = (REPO / "config" / "station.example.toml").read_text()
    text = text.replace('data_dir = "../var/pack-01"', f'data_dir = "{tmp_path / "data"}"')
    text = text.replace(
        'path = "catalog.example.json"', f'path = "{REPO / "config" / "catalog.example.json"}"'
    )
    text = text.replace('path = "manifests"', f'path = "{REPO / "config" / "manifests"}"')
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def fill(data_dir: Path) -> None:
    store = LearnedWeightStore(data_dir / FILE_NAME, "dc-north", "pack-01", 200)
    rng = random.Random(3)
    for _ in range(30):
        store.add(Subject.SKU, "MUG-BLUE", WeightSample(rng.gauss(440, 4)), "pass", NOW)
        store.add(Subject.SKU, "TEA-GREEN-250", WeightSample(rng.gauss(268, 3)), "pass", NOW)
    store.add(Subject.SKU, "NEW-THING", WeightSample(12.0), "packer", NOW)
    store.add_unknown("4099999999999", 55.5, "A1", NOW)
    store.close()


def test_without_a_store_it_says_so(config, capsys):
    assert main(["weights", "report", str(config)]) == 1
    assert "no learned weights yet" in capsys.readouterr().err


def test_report_flags_the_wrong_weight_first(config, tmp_path, capsys):
    fill(tmp_path / "data")
    assert main(["weights", "report", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "learned weights at dc-north/pack-01"
    assert " MUG-BLUE " in lines[2] and "mean_off" in lines[2]  # 412 in the catalog, 440 real
    tea = next(line for line in lines if " TEA-GREEN-250 " in line)
    assert tea.rstrip().endswith("ok")
    new = next(line for line in lines if " NEW-THING " in line)
    assert "not_confident" in new and " - " in new  # no catalog figure
    assert any("4099999999999" in line and "55.5 g" in line for line in lines)


def test_export_csv_and_json(config, tmp_path, capsys):
    fill(tmp_path / "data")
    assert main(["weights", "export", str(config), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    mug = next(r for r in rows if r["key"] == "MUG-BLUE")
    assert (mug["site"], mug["station"], mug["subject"]) == ("dc-north", "pack-01", "sku")
    assert abs(float(mug["learned_g"]) - 440) < 3 and mug["flags"] == "mean_off"
    out = tmp_path / "weights.json"
    assert main(["weights", "export", str(config), "--format", "json", "--output", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["format"] == "packstation-learned-weights/1"
    assert {w["key"] for w in document["weights"]} == {"MUG-BLUE", "TEA-GREEN-250", "NEW-THING"}
    assert document["unknown_items"][0]["barcode"] == "4099999999999"
