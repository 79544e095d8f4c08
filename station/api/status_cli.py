"""`packstation status`: the station's health in a terminal, read from its own API."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from station.config_loader import ConfigError

_TIMEOUT_S = 3.0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("status", help="print a running station's health")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="station TOML file (finds the API's port)")
    where.add_argument("--url", help="the API's base URL (default http://127.0.0.1:8420)")
    command.add_argument("--json", action="store_true", help="print the raw status document")
    command.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    try:
        base = _base_url(args)
    except ConfigError as exc:
        print(exc.report())
        return 2
    try:
        with urllib.request.urlopen(f"{base}/api/status", timeout=_TIMEOUT_S) as response:
            status = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        print(f"station not answering at {base}: {exc}")
        return 3
    print(json.dumps(status, indent=2) if args.json else describe(status))
    return 0 if status["ready"] else 1


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    if args.config:
        from station.daemon import load_station_config

        api = load_station_config(args.config).api
        host = "127.0.0.1" if api.bind in ("0.0.0.0", "::") else api.bind
        return f"http://{host}:{api.port}"
    return "http://127.0.0.1:8420"


def describe(status: dict[str, Any]) -> str:
    carton = status["carton"]
    weight = status["weight"]
    grams = "–" if weight["grams"] is None else f"{weight['grams']:.0f} g"
    lines = [
        f"station {status['site_id']}/{status['station_id']}: "
        f"{'READY' if status['ready'] else 'NOT READY'} ({status['mode']} mode, "
        f"up {status['uptime_s']:.0f} s)",
        f"  session:  {status['state']}, packer {status['packer'] or '-'}",
        "  carton:   "
        + (
            f"{carton['order_id']}/{carton['carton_id']}, attempt {carton['attempts']}"
            + (f", last {carton['outcome']}" if carton["outcome"] else "")
            if carton
            else "-"
        ),
        f"  scale:    {grams} ({weight['state']})",
        f"  outbox:   {status['outbox_depth']} event(s) waiting",
        "  devices:",
    ]
    for device in status["devices"]:
        detail = f" - {device['detail']}" if device["detail"] else ""
        lines.append(f"    {device['state']:>10}  {device['name']}{detail}")
    return "\n".join(lines)
