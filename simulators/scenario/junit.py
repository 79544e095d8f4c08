"""JUnit XML for CI: one <testsuite> per scenario file, one <testcase> per scenario.

A scenario whose verdicts or events differ from its expectations is a <failure> (the diff is its
text); one that could not be run to the end (a step without effect, a daemon that died) is an
<error>; a file that does not parse is a testcase with an <error> too, so CI shows it instead of a
green run with fewer tests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulators.scenario.runner import ScenarioResult


@dataclass
class FileResults:
    path: Path
    results: list[ScenarioResult] = field(default_factory=list)
    load_error: str | None = None


def junit_xml(files: Sequence[FileResults]) -> bytes:
    root = ET.Element("testsuites", name="packstation scenarios")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for file in files:
        suite = ET.SubElement(root, "testsuite", name=str(file.path))
        counts = {"tests": 0, "failures": 0, "errors": 0}
        suite_time = 0.0
        if file.load_error is not None:
            case = ET.SubElement(
                suite, "testcase", classname=_classname(file.path), name="(load)", time="0"
            )
            ET.SubElement(
                case, "error", message="the scenario file is invalid"
            ).text = file.load_error
            counts["tests"] += 1
            counts["errors"] += 1
        for result in file.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_classname(file.path),
                name=result.name,
                time=f"{result.duration_s:.3f}",
            )
            counts["tests"] += 1
            suite_time += result.duration_s
            if result.error is not None:
                counts["errors"] += 1
                ET.SubElement(
                    case, "error", message=_first_line(result.error)
                ).text = result.report()
            elif not result.passed:
                counts["failures"] += 1
                ET.SubElement(
                    case, "failure", message="verdicts or events differ from the expectation"
                ).text = result.report()
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _classname(path: Path) -> str:
    return f"scenarios.{path.stem}"


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""
