"""`packstation scenario run FILE...` and `packstation scenario check FILE...`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from simulators.scenario.model import LoadedScenario, ScenarioFileError, load_scenarios

DEFAULT_SPEED = 1.0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    scenario = subparsers.add_parser(
        "scenario", help="run QA scenarios against the daemon on simulated hardware"
    )
    commands = scenario.add_subparsers(title="scenario commands", metavar="ACTION", required=True)
    run = commands.add_parser("run", help="run scenario files; exit 1 if any scenario fails")
    run.add_argument("files", nargs="+", type=Path, help="scenario TOML files or directories")
    run.add_argument("--junit", type=Path, metavar="OUT.xml", help="write a JUnit XML report")
    run.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"station clock speed for waits and timeouts, 1-20 (default {DEFAULT_SPEED:g})",
    )
    run.add_argument(
        "-k", dest="name_filter", default="", help="only scenarios whose name has this"
    )
    run.add_argument(
        "--jobs", type=int, default=1, help="scenarios run at once (each has its own daemon)"
    )
    run.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each scenario's logs and data under DIR"
    )
    run.set_defaults(func=run_command)
    check = commands.add_parser("check", help="validate scenario files without running them")
    check.add_argument("files", nargs="+", type=Path, help="scenario TOML files or directories")
    check.set_defaults(func=check_command)


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a directory stands for its *.toml files, sorted."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    return files


def check_command(args: argparse.Namespace) -> int:
    failed = False
    for path in scenario_files(args.files):
        try:
            names = [s.name for s in load_scenarios(path)]
        except ScenarioFileError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            failed = True
            continue
        print(f"ok {path}: {len(names)} scenario(s): {', '.join(names)}")
    return 1 if failed else 0


def run_command(args: argparse.Namespace) -> int:
    # The runner pulls in paho and the rig: imported only when scenarios actually run.
    from simulators.scenario.junit import FileResults, junit_xml
    from simulators.scenario.runner import MAX_SPEED, run_scenarios, slug

    if not 1.0 <= args.speed <= MAX_SPEED:
        print(f"--speed must be between 1 and {MAX_SPEED:g}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return 2
    outcomes: list[FileResults] = []
    runs: list[tuple[FileResults, LoadedScenario]] = []
    for path in scenario_files(args.files):
        file_results = FileResults(path)
        outcomes.append(file_results)
        try:
            loaded = load_scenarios(path)
        except ScenarioFileError as exc:
            file_results.load_error = str(exc)
            print(f"INVALID {exc}", flush=True)
            continue
        runs += [
            (file_results, s) for s in loaded if not args.name_filter or args.name_filter in s.name
        ]
    with tempfile.TemporaryDirectory(prefix="packstation-scenarios-") as tmp:
        root = args.keep or Path(tmp)
        work = [(s, root / f.path.stem / slug(s.name)) for f, s in runs]
        for (file_results, scenario), result in zip(
            runs, run_scenarios(work, args.speed, args.jobs), strict=True
        ):
            file_results.results.append(result)
            status = "PASS" if result.passed else ("ERROR" if result.error else "FAIL")
            took = f"{result.duration_s:.1f} s"
            print(f"{status} {file_results.path.name}: {scenario.name} ({took})", flush=True)
            if not result.passed:
                print(_indent(result.report()), flush=True)
    if args.junit is not None:
        args.junit.write_bytes(junit_xml(outcomes))
    results = [r for f in outcomes for r in f.results]
    broken = sum(1 for f in outcomes if f.load_error is not None)
    failed = sum(1 for r in results if not r.passed)
    print(
        f"{len(results) - failed} passed, {failed} failed"
        + (f", {broken} invalid file(s)" if broken else "")
    )
    return 1 if failed or broken or not results else 0


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
