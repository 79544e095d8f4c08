"""RFID end to end: `packstation run` with an LLRP reader simulator under the platter, the pty
scale and scanner, mosquitto and the sink. Tagged units carry SGTIN-96 tags of their catalog
GTIN; the reads that count are those of the decisive window above antenna 1's floor."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulators.rig import RFID_READER
from tests.e2e.conftest import DETECTED, FAULT, VERIFICATION, Harness, query, wait_until

pytestmark = pytest.mark.e2e

EAR = "EAR-SILVER"  # ORD-1004: tea gift kit (mug + 2 tins), 8 g silver earrings, gift note
PHONES = "HEADPHONES-X1"
READER_DEVICE = f"rfid {RFID_READER}"


def rfid_harness(make_harness: Callable[..., Harness], **options: object) -> Harness:
    harness = make_harness(rfid=True, **options)
    harness.start_sink()
    harness.start_daemon()
    reader_up = wait_until(
        lambda: any(
            m.get("device") == RFID_READER and m.get("health") == "up"
            for m in harness.daemon.log_messages()
        ),
        timeout=20,
    )
    assert reader_up, harness.daemon.log_tail()
    return harness


def rfid_windows(harness: Harness) -> list[dict]:
    return [m for m in harness.daemon.log_messages() if m.get("msg") == "rfid window"]


def test_an_earring_left_beside_the_box_is_blocked_by_rfid_where_weight_cannot_tell(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    harness.station.add_strays(PHONES, 4)  # the neighbour's order, read too
    harness.station.pack("A1", "ORD-1004", "C1", "BOX-M", beside=(EAR,))

    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004")
    detected = harness.wait_for_event(DETECTED)
    data = verdict["data"]
    assert data["outcome"] == "BLOCK", data
    assert data["extra_lines"] == []  # the neighbour's headphones are not in this carton
    weight = data["weight"]
    assert abs(weight["measured_g"] - weight["expected_g"]) <= weight["tolerance_g"]
    [line] = detected["data"]["missing_lines"]
    assert (line["sku"], line["quantity_missing"], line["line_id"]) == (EAR, 1, "2")
    # EPC-level evidence: the earring's tag, read beside the box below the floor, is named.
    beside_epc = harness.station.beside_epcs[EAR].hex().upper()
    reasons = " ".join(r["message"] for r in detected["data"]["reasons"])
    assert beside_epc in reasons
    assert line["epcs"] == [beside_epc]
    [window] = rfid_windows(harness)
    assert window["units_by_sku"] == {}
    rejected = window["rejected_reads"]
    assert rejected.get("below_rssi_floor", 0) > 0 and rejected.get("wrong_antenna", 0) > 0
    assert window["rssi_histograms"] and window["rssi_histograms"][0]["antenna"] == 1


def test_a_complete_tagged_carton_passes_and_its_epcs_are_shipped(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    harness.pack("ORD-1004")

    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004")
    assert verdict["data"]["outcome"] == "PASS", verdict["data"]
    [window] = rfid_windows(harness)
    assert window["units_by_sku"] == {EAR: 1}
    assert harness.wait_for_attempts("ORD-1004") == [(1, "PASS")]
    ledger = harness.data_dir / "rfid-ledger.sqlite3"

    shipped = query(ledger, "SELECT epc, order_id FROM shipped")
    assert [(epc, order) for epc, order in shipped] == [
        (harness.station.carton_epcs[0].hex().upper(), "ORD-1004")
    ]


def test_a_stopped_reader_with_rfid_required_sends_the_carton_to_review(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(
        make_harness, extra_config='[policy]\nrequired_channels = ["weight", "rfid"]\n'
    )
    assert harness.station.rfid_reader is not None
    harness.station.rfid_reader.stop()
    fault = harness.wait_for_event(
        FAULT, lambda e: e["data"]["component"] == READER_DEVICE, timeout=20
    )
    assert fault["data"]["state"] == "raised"

    harness.pack("ORD-1004")
    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004")
    assert verdict["data"]["outcome"] == "REVIEW", verdict["data"]
    codes = {r["code"] for r in verdict["data"]["reasons"]}
    assert "channel_down" in codes, verdict["data"]["reasons"]
    assert harness.wait_for_attempts("ORD-1004") == [(1, "REVIEW")]


def test_stray_tags_of_the_neighbours_order_make_no_extra(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    strays = harness.station.add_strays(PHONES, 4) + harness.station.add_strays(EAR, 2)
    harness.pack("ORD-1004")

    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004")
    assert verdict["data"]["outcome"] == "PASS", verdict["data"]
    assert verdict["data"]["extra_lines"] == []
    [window] = rfid_windows(harness)
    assert window["units_by_sku"] == {EAR: 1}
    rejected = window["rejected_reads"]
    assert rejected.get("wrong_antenna", 0) > 0 and rejected.get("below_rssi_floor", 0) > 0
    assert len(strays) == 6


def test_must_not_pass_a_unit_read_at_full_strength_while_packing_but_gone_at_the_close(
    make_harness: Callable[..., Harness],
) -> None:
    """The earring went in the carton (its tag read at full strength on antenna 1), then came
    out again before CLOSE: reads from before the decisive window must not count it."""
    harness = rfid_harness(make_harness)
    # The neighbour's tags keep the reader visibly alive (a reader that reads nothing at all
    # while tagged units are expected is STALE: REVIEW, fail closed, never PASS either).
    harness.station.add_strays(PHONES, 3)
    epc = harness.station.upcoming_tag(EAR)
    assert epc is not None
    harness.station.pack("A1", "ORD-1004", "C1", "BOX-M", taken_away=(EAR,))

    verdict = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004")
    assert verdict["data"]["outcome"] == "BLOCK", verdict["data"]
    detected = harness.wait_for_event(DETECTED)
    [line] = detected["data"]["missing_lines"]
    assert (line["sku"], line["quantity_missing"]) == (EAR, 1)
    # Read just before the window opened it is named as evidence; read earlier, not at all.
    assert line["epcs"] in ([], [epc.hex().upper()])
    [window] = rfid_windows(harness)
    assert window["units_by_sku"] == {}
    assert harness.wait_for_attempts("ORD-1004") == [(1, "BLOCK")]


def test_a_complete_carton_passes_under_heavy_stray_traffic_and_a_passing_cart(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    strays = harness.station.add_strays(PHONES, 50)
    cart = harness.station.pass_cart(PHONES, 20, duration_s=0.3)  # gone before the close
    harness.pack("ORD-1004")

    verdict = harness.wait_for_event(
        VERIFICATION, lambda e: e["data"]["order_id"] == "ORD-1004", timeout=20
    )
    assert verdict["data"]["outcome"] == "PASS", verdict["data"]
    assert verdict["data"]["extra_lines"] == []
    [window] = rfid_windows(harness)
    assert window["units_by_sku"] == {EAR: 1}
    assert window["reads"] > 50
    assert len(strays) == 50 and len(cart) == 20
