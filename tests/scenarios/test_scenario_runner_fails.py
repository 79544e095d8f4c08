"""The runner must fail a scenario whose expectation is wrong (or a library that always passes
would prove nothing), and `packstation scenario run` must say so in its exit code and in JUnit XML
that CI tools read."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulators.scenario.model import parse_scenarios
from simulators.scenario.runner import run_scenario

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

SHORT_CARTON = """
[[scenario]]
name = "{name}"
cartons = [{{ ref = "ORD-1002/C1" }}]
steps = [
  {{ do = "login", badge = "A1" }},
  {{ do = "scan_order", carton = "ORD-1002/C1" }},
  {{ do = "scan_box", box = "BOX-M" }},
  {{ do = "pack", leave_out = ["BOOK-COOK"] }},
  {{ do = "close", expect = "{outcome}", missing = {{ {missing} = 1 }} }},
]

[scenario.expect]
events = [
  {{ type = "verification.result", outcome = "{outcome}" }},
  {{ type = "{follow_up}", missing = {{ BOOK-COOK = 1 }} }},
]
"""
TRUE = SHORT_CARTON.format(
    name="a short carton is blocked",
    outcome="BLOCK",
    missing="BOOK-COOK",
    follow_up="missing_item.detected",
)
WRONG = SHORT_CARTON.format(
    name="a short carton passes (wrong)",
    outcome="PASS",
    missing="CANDLE-SOY",
    follow_up="missing_item.shipped_short",
)

# A run that cannot go on (here: packing with no carton open) is an error, not a failure.
STUCK = """
[[scenario]]
name = "packing with no carton open"
cartons = [{ ref = "ORD-1001/C1" }]
steps = [{ do = "login" }, { do = "pack" }, { do = "close", expect = "PASS" }]
"""


def test_a_wrong_expectation_fails_with_a_diff(tmp_path: Path) -> None:
    [loaded] = parse_scenarios(WRONG.encode(), tmp_path / "wrong.toml")
    result = run_scenario(loaded, tmp_path / "run")

    assert not result.passed and result.error is None, result.report()
    [close] = result.closes
    assert close.actual is not None and close.actual.outcome == "BLOCK"
    assert close.problems == [
        "outcome BLOCK, expected PASS",
        "missing {BOOK-COOK: 1}, expected {CANDLE-SOY: 1}",
    ]
    assert result.events is not None and not result.events.ok
    found = [index is not None for _, index in result.events.matches]
    assert found == [False, False]  # no PASS; no shipped_short
    report = result.report()
    # The BLOCK and the detection were not expected: both are named as unexpected.
    assert report.count("FAIL unexpected") == 2, report
    assert "NOT FOUND" in report and "missing_item.detected" in report


def test_the_command_exits_1_and_writes_junit_that_parses(tmp_path: Path) -> None:
    scenarios = tmp_path / "mixed.toml"
    scenarios.write_text(TRUE + WRONG + STUCK)
    invalid = tmp_path / "invalid.toml"
    invalid.write_text('[[scenario]]\nname = "typo"\ncartons = []\nstepz = []\n')
    junit = tmp_path / "out.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "station.cli",
            "scenario",
            "run",
            str(scenarios),
            str(invalid),
            *("--junit", str(junit)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "PASS mixed.toml: a short carton is blocked" in done.stdout
    assert "FAIL mixed.toml: a short carton passes (wrong)" in done.stdout
    assert "ERROR mixed.toml: packing with no carton open" in done.stdout
    assert "INVALID" in done.stdout and "1 passed, 2 failed, 1 invalid file(s)" in done.stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "2")
    suites = {Path(s.get("name", "")).name: s for s in root.iter("testsuite")}
    cases = {c.get("name"): c for c in suites["mixed.toml"].iter("testcase")}
    assert cases["a short carton is blocked"].find("failure") is None
    failure = cases["a short carton passes (wrong)"].find("failure")
    assert failure is not None and "outcome BLOCK, expected PASS" in (failure.text or "")
    assert float(cases["a short carton is blocked"].get("time", "0")) > 0
    error = cases["packing with no carton open"].find("error")
    assert error is not None and "no carton was opened" in error.get("message", "")
    [load_error] = suites["invalid.toml"].iter("error")
    assert "scenario[0]" in (load_error.text or "") and "cartons" in (load_error.text or "")
