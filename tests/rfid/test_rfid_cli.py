from __future__ import annotations

import argparse
import json

from rfid.cli import add_commands
from simulators.rfid_sim import SerialReaderSimulator, TagField, carton_tags, sgtin
from simulators.rfid_sim_llrp import LlrpReaderSimulator


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="packstation")
    add_commands(root.add_subparsers())
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


def test_epc_decode_prints_fields(capsys):
    assert run(["epc", "decode", "3074257BF7194E4000001A85"]) == 0
    out = capsys.readouterr().out
    assert "GTIN-14 80614141123458" in out
    assert "urn:epc:tag:sgtin-96:3.0614141.812345.6789" in out


def test_epc_decode_json_and_exit_2_naming_the_problem(capsys):
    code = run(["epc", "decode", "--json", "3114257BF4499602D2000000", "303C257BF7194E4000001A85"])
    assert code == 2
    decoded, bad = json.loads(capsys.readouterr().out)
    assert decoded["sscc18"] == "106141412345678908"
    assert "partition 7 is invalid" in bad["error"] and bad["kind"] == "InvalidEpc"
    assert run(["epc", "decode", "E28068940000400A9D22A9EB"]) == 2
    assert "header 0xE2" in capsys.readouterr().err


def test_rfid_watch_prints_reads_with_antenna_and_rssi(capsys):
    field = TagField(carton_tags([sgtin(7)], antenna=1, rssi_dbm=-47))
    with SerialReaderSimulator("chafon", field) as sim:
        argv = ["rfid", "watch", "--target", sim.tcp_url, "--protocol", "chafon"]
        assert run([*argv, "--rssi-byte", "negative_dbm", "--seconds", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "-- up:" in out
    line = next(x for x in out.splitlines() if x.startswith(sgtin(7).hex().upper()))
    assert "ant 1" in line and "dBm" in line and "urn:epc:tag:sgtin-96:1.0614141.812345.7" in line


def test_rfid_watch_llrp(capsys):
    with LlrpReaderSimulator(TagField(carton_tags([sgtin(8)]))) as sim:
        target = f"127.0.0.1:{sim.tcp_port}"
        assert (
            run(["rfid", "watch", "--target", target, "--protocol", "llrp", "--seconds", "0.6"])
            == 0
        )
    assert sgtin(8).hex().upper() in capsys.readouterr().out


def test_rfid_watch_rejects_bad_settings(capsys):
    assert run(["rfid", "watch", "--target", "socket://nohost", "--protocol", "ascii"]) == 2
    assert "needs host:port" in capsys.readouterr().err


def test_simulate_rfid_is_registered():
    from simulators.cli import add_commands as add_simulate

    root = argparse.ArgumentParser(prog="packstation")
    add_simulate(root.add_subparsers())
    args = root.parse_args(["simulate", "rfid", "--protocol", "llrp", "--tcp", "0"])
    assert (args.protocol, args.tcp, args.carton) == ("llrp", 0, 3)
