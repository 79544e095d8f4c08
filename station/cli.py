"""The `packstation` console script. Each module adds its own subcommands from one table here."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path

# Modules that contribute subcommands through `add_commands(subparsers)`, in help order, with the
# commands each adds. `packstation run` imports only the daemon's module: the camera simulator's
# OpenCV alone would double the station's resident memory.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "station.daemon": ("run",),
    "station.demo": ("demo",),
    "scale.cli": ("scale",),
    "rfid.cli": ("epc", "rfid"),
    "simulators.cli": ("simulate",),
    "simulators.scenario.cli": ("scenario",),
    "station.contract": ("contract",),
    "station.api.pins": ("hash-pin",),
    "station.api.openapi": ("openapi",),
    "station.api.status_cli": ("status",),
    "station.learning.cli": ("weights",),
    "station.evidence_cli": ("evidence",),
    "station.actuators.cli": ("actuators",),
    "vision.cli": ("vision",),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_modules_for(argv[0] if argv else None))
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a broken socket or pipe of the command's own, not its output
        # `packstation config-schema | head`: the reader has what it wanted. Stop quietly, and
        # keep the interpreter's final flush from failing on the same pipe (Python's idiom).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end was closed (poll reports an error on it)."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(mask & select.POLLERR for _fd, mask in poller.poll(0))


def _modules_for(command: str | None) -> list[str]:
    """The one module that provides `command`, or all of them (for help and unknown commands)."""
    owners = [module for module, commands in COMMAND_MODULES.items() if command in commands]
    return owners or list(COMMAND_MODULES)


def build_parser(modules: Sequence[str] = tuple(COMMAND_MODULES)) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="packstation", description="Packing-station verification daemon."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_config_commands(subparsers)
    for name in modules:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def _add_config_commands(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser(
        "check-config", help="validate a station config file and summarise it"
    )
    check.add_argument("file", type=Path)
    check.set_defaults(func=_run_check_config)
    schema = subparsers.add_parser("config-schema", help="print the config's JSON Schema")
    schema.set_defaults(func=_run_config_schema)


def _run_check_config(args: argparse.Namespace) -> int:
    """The structure, then what it refers to (`station.preflight`): the same problems `run`
    refuses to start with."""
    from station.config_loader import ConfigError
    from station.daemon import load_station_config
    from station.preflight import preflight

    try:
        config = load_station_config(args.file)
        problems = preflight(config)
        if problems:
            raise ConfigError(str(args.file), problems)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    print(summarise(config))
    return 0


def summarise(config: object) -> str:
    from station.config import StationConfig

    assert isinstance(config, StationConfig)
    scanners = ", ".join(
        f"{s.type} {getattr(s, 'port', getattr(s, 'device', ''))}" for s in config.scanners
    )
    lines = [
        f"station {config.station.site}/{config.station.id}: OK ({config.workflow.mode} mode)",
        f"  scale:     {config.scale.protocol} on {config.scale.port}",
        f"  scanners:  {scanners}",
        f"  manifests: {config.manifests.source.type}",
        f"  mqtt:      {config.mqtt.host}:{config.mqtt.port} (MQTT {config.mqtt.protocol})",
        f"  policy:    requires {', '.join(config.policy.required_channels)}",
        f"  learning:  {config.learning.mode} (min {config.learning.min_samples} samples)",
    ]
    if config.policy.advisory_channels:
        lines.append(f"  advisory:  {', '.join(config.policy.advisory_channels)}")
    if config.policy.backup_channels:
        backup = ", ".join(config.policy.backup_channels)
        lines.append(f"  backup:    {backup} (required where the scale cannot vouch alone)")
    if config.rfid is not None:
        readers = ", ".join(f"{r.name} ({r.protocol} {r.endpoint})" for r in config.rfid.readers)
        lines.append(f"  rfid:      {readers}")
    if config.vision is not None:
        vision = config.vision
        model = vision.detector.model
        lines.append(f"  vision:    {vision.source.type} camera, {vision.detector.type} {model}")
    return "\n".join(lines)


def _run_config_schema(args: argparse.Namespace) -> int:
    from station.config import StationConfig

    print(json.dumps(StationConfig.model_json_schema(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
