"""A new site with a wrong catalog weight, end to end: `packstation run` on the rig in shadow
mode learns the real weight from single-SKU cartons whose units the packer scanned, the weigh-one-
unit flow captures a unit and an unknown item, `packstation weights report` flags the catalog, and
after switching to `[learning] mode = "use"` in enforce mode a complete carton passes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from simulators.rig import EXAMPLE_CATALOG
from station.domain import Manifest, ManifestLine
from tests.e2e.conftest import REPO, Harness, query, wait_until

pytestmark = pytest.mark.e2e

MUG = "MUG-BLUE"  # really 412 ± 4 g; this site's catalog says 380 g
MUG_BARCODE = "4006381333931"
UNKNOWN_BARCODE = "4099999999999"
CARTONS = 6


def wrong_catalog(path: Path) -> Path:
    document = json.loads(EXAMPLE_CATALOG.read_text())
    for item in document["items"]:
        if item["sku"] == MUG:
            item["unit_weight_g"] = 380
    path.write_text(json.dumps(document))
    return path


def learning(mode: str) -> str:
    return f'[learning]\nmode = "{mode}"\nmin_samples = {CARTONS}\n'


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def samples(h: Harness, source: str) -> list[tuple[str, float]]:
    return query(
        h.data_dir / "learned_weights.sqlite",
        "SELECT key, grams_per_unit FROM samples WHERE source = ? ORDER BY id",
        (source,),
    )


def said(h: Harness, key: str) -> bool:
    return key in [m.get("msg") for m in h.daemon.log_messages()]


def test_a_site_learns_a_wrong_catalog_weight_and_then_enforces(
    make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h = make_harness(
        "shadow",
        catalog_path=wrong_catalog(tmp_path / "site-catalog.json"),
        true_catalog_path=EXAMPLE_CATALOG,
        extra_config=learning("report"),
    )
    st = h.station
    h.start_daemon()
    orders = [f"ORD-{9000 + i}" for i in range(CARTONS + 1)]
    for order in orders:
        st.write_manifest(
            Manifest(
                order_id=order,
                carton_id="C1",
                version=1,
                lines=(ManifestLine(line_id="1", sku=MUG, quantity=2),),
                box_code="BOX-S",
            )
        )

    # Shadow mode: the wrong catalog weight blocks every complete carton (nobody is stopped).
    for order in orders[:CARTONS]:
        st.pack("A1", order, "C1", "BOX-S", scan_units=True)
        assert h.wait_for_attempts(order) == [(1, "BLOCK")]
        st.clear_platter()
    learned = samples(h, "single_sku_carton")
    assert len(learned) == CARTONS
    assert all(key == MUG and abs(g - 412) < 12 for key, g in learned)

    # Weigh one unit: a mug, then an item the catalog does not know.
    st.scan("WEIGH-UNIT")
    st.place(st.unit_weight(MUG))
    h.wait_for_settled()
    st.scan(MUG_BARCODE)
    assert wait_until(lambda: len(samples(h, "unit_weighed")) == 1), h.daemon.log_tail()
    # A second mug put on the first: the scale was not cleared, so it is not "one mug" of 824 g.
    st.place(st.unit_weight(MUG))
    h.wait_for_settled()
    st.scan(MUG_BARCODE)
    assert wait_until(lambda: said(h, "weigh.platter_not_emptied")), h.daemon.log_tail()
    assert len(samples(h, "unit_weighed")) == 1
    st.clear_platter()
    h.wait_for_settled()  # reads empty: the next capture may go
    st.place(55.0)
    h.wait_for_settled()
    st.scan(UNKNOWN_BARCODE)
    unknown_rows = "SELECT barcode, grams FROM unknown_items"
    db = h.data_dir / "learned_weights.sqlite"
    assert wait_until(lambda: query(db, unknown_rows) != []), h.daemon.log_tail()
    ((barcode, grams),) = query(db, unknown_rows)
    assert barcode == UNKNOWN_BARCODE and abs(grams - 55) <= 1
    st.clear_platter()
    st.scan("WEIGH-UNIT")
    messages = [m.get("msg") for m in h.daemon.log_messages()]
    assert "weigh.captured_unit" in messages and "weigh.captured_unknown" in messages
    assert wait_until(lambda: "weigh.ended" in [m.get("msg") for m in h.daemon.log_messages()])

    # The report flags the catalog; the export carries it for the master-data team.
    report = cli("weights", "report", str(st.config_path))
    assert report.returncode == 0, report.stderr
    (mug_line,) = [line for line in report.stdout.splitlines() if f" {MUG} " in line]
    assert "mean_off" in mug_line and "380.0" in mug_line, report.stdout
    assert UNKNOWN_BARCODE in report.stdout
    export = cli("weights", "export", str(st.config_path), "--format", "json")
    document = json.loads(export.stdout)
    (mug,) = [w for w in document["weights"] if w["key"] == MUG]
    assert mug["confident"] and "mean_off" in mug["flags"] and abs(mug["learned_g"] - 412) < 4
    assert (document["site"], mug["site"]) == ("dc-sim", "dc-sim")
    assert mug["samples"] == CARTONS + 1

    # Enforce with the learned weights: the complete carton passes, and says why.
    h.daemon.stop()
    st.mode = "enforce"
    st.extra_config = learning("use")
    st.config_path.write_text(st.config_toml())
    h.start_daemon()
    # Units scanned as during learning: each step is checked against the learned weight too.
    st.pack("A1", orders[-1], "C1", "BOX-S", scan_units=True)
    assert h.wait_for_attempts(orders[-1]) == [(1, "PASS")]
    (record,) = query(
        h.data_dir / "evidence.sqlite3",
        "SELECT record FROM attempts WHERE order_id = ?",
        (orders[-1],),
    )
    (weight,) = [r for r in json.loads(record[0])["verdict"]["reports"] if r["channel"] == "weight"]
    assert weight["provenance"] == {MUG: "learned", "box:BOX-S": "catalog"}
