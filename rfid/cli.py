"""`packstation epc decode` and `packstation rfid watch`: probes for technicians."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from pydantic import ValidationError

from rfid.config import rfid_reader_config_from
from rfid.device import ReaderHealth, RfidReader
from rfid.epc import DecodedEpc, EpcError, decode_epc, epc_hex
from rfid.protocols import PROTOCOL_NAMES
from rfid.reads import TagRead


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    epc = subparsers.add_parser("epc", help="EPC tools")
    epc_commands = epc.add_subparsers(title="epc commands", metavar="COMMAND")
    decode = epc_commands.add_parser(
        "decode", help="decode SGTIN-96, SGTIN-198 and SSCC-96 EPCs given in hex"
    )
    decode.add_argument("epcs", nargs="+", metavar="HEX")
    decode.add_argument("--json", action="store_true", help="one JSON array, for machines")
    decode.set_defaults(func=run_decode)

    rfid = subparsers.add_parser("rfid", help="RFID reader tools")
    rfid_commands = rfid.add_subparsers(title="rfid commands", metavar="COMMAND")
    watch = rfid_commands.add_parser(
        "watch", help="print live tag reads (EPC, antenna, RSSI) until Ctrl-C"
    )
    watch.add_argument(
        "--target",
        required=True,
        help="LLRP: host or host:port; serial readers: /dev/ttyUSB0, socket://host:port, ...",
    )
    watch.add_argument("--protocol", choices=PROTOCOL_NAMES, required=True)
    watch.add_argument("--antenna", type=int, action="append", dest="antennas", metavar="N")
    watch.add_argument("--baudrate", type=int)
    watch.add_argument("--power", type=float, metavar="DBM", help="transmit power")
    watch.add_argument("--rssi-byte", choices=("ignore", "raw", "negative_dbm"), help="Chafon")
    watch.add_argument("--line-pattern", help="ASCII readers: regex with (?P<epc>...)")
    watch.add_argument("--seconds", type=float, help="stop after this long (for scripts)")
    watch.set_defaults(func=run_watch)


# --- epc decode --------------------------------------------------------------------------------


def run_decode(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed = False
    for text in args.epcs:
        try:
            decoded = decode_epc(text)
        except EpcError as exc:
            failed = True
            results.append({"epc": text, "error": str(exc), "kind": type(exc).__name__})
            if not args.json:
                print(f"{text}: {exc}", file=sys.stderr)
            continue
        results.append(decoded.as_dict())
        if not args.json:
            print(format_decoded(decoded))
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failed else 0


def format_decoded(decoded: DecodedEpc) -> str:
    key = f"GTIN-14 {decoded.gtin14}" if decoded.gtin14 else f"SSCC-18 {decoded.sscc18}"
    lines = [
        f"{decoded.epc_hex}",
        f"  scheme    {decoded.scheme}, filter {decoded.filter} ({decoded.filter_name}), "
        f"partition {decoded.partition}",
        f"  company   {decoded.company_prefix}   reference {decoded.item_reference}"
        + (f"   serial {decoded.serial}" if decoded.serial else ""),
        f"  {key}",
        f"  tag URI   {decoded.tag_uri}",
        f"  identity  {decoded.pure_identity_uri}",
    ]
    return "\n".join(lines)


# --- rfid watch --------------------------------------------------------------------------------


def watch_config(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"protocol": args.protocol, "name": "watch"}
    if args.protocol == "llrp":
        host, _, port = args.target.rpartition(":") if ":" in args.target else (args.target, "", "")
        data["host"] = host
        if port:
            data["tcp_port"] = int(port) if port.isdigit() else port
    else:
        data["port"] = args.target
    if args.antennas:
        data["antennas"] = args.antennas
    if args.baudrate is not None:
        data["baudrate"] = args.baudrate
    if args.power is not None:
        key = {
            "llrp": "antenna_power_dbm",
            "chafon": "power_dbm",
            "thingmagic": "read_power_dbm",
        }.get(args.protocol)
        if key == "antenna_power_dbm":
            data[key] = {a: args.power for a in (args.antennas or [1])}
        elif key == "power_dbm":
            data[key] = round(args.power)
        elif key is not None:
            data[key] = args.power
    if args.rssi_byte is not None:
        data["rssi_byte"] = args.rssi_byte
    if args.line_pattern is not None:
        data["line_pattern"] = args.line_pattern
    return data


def run_watch(args: argparse.Namespace) -> int:
    try:
        config = rfid_reader_config_from(watch_config(args))
    except ValidationError as exc:
        print(f"invalid RFID reader settings:\n{exc}", file=sys.stderr)
        return 2
    print_lock = threading.Lock()

    def on_reads(reads: list[TagRead]) -> None:
        with print_lock:
            for tag_read in reads:
                print(format_read(tag_read), flush=True)

    def on_health(health: ReaderHealth) -> None:
        with print_lock:
            print(f"-- {health.state}: {health.detail}", flush=True)

    print(f"watching {config.protocol} reader on {config.endpoint}; Ctrl-C to stop")
    reader = RfidReader(config, on_reads, on_health)
    reader.start()
    try:
        if args.seconds:
            time.sleep(args.seconds)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
    counters = reader.counters()
    print(
        f"{counters.reads} reads, {counters.bad_frames} bad frames, "
        f"{counters.dropped_bytes} bytes dropped, {counters.reconnects} reconnects"
        + (f"; last problem: {counters.last_problem}" if counters.last_problem else "")
    )
    return 0


def format_read(tag_read: TagRead) -> str:
    rssi = "   —   " if tag_read.rssi_dbm is None else f"{tag_read.rssi_dbm:6.1f} dBm"
    try:
        identity = decode_epc(tag_read.epc).tag_uri
    except EpcError as exc:
        identity = f"({str(exc).split(';')[0].split(': ', 1)[-1]})"
    return (
        f"{epc_hex(tag_read.epc):<26} ant {tag_read.antenna:<2} {rssi:>11}  "
        f"x{tag_read.seen_count:<3} {identity}"
    )
