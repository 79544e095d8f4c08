"""Degraded mode end to end: the scale's cable is pulled, the carton is held, a reviewer authorises
unit scans in place of the weight, the packer scans every unit and the carton passes, flagged."""

from __future__ import annotations

from typing import Any

from station.session import SessionState

from .conftest import PACKER, REVIEWER, REVIEWER_PIN, TOKEN, RunningStation

ORDER = "ORD-1001"  # a mug, two pairs of socks and a gift note


def degraded(station: RunningStation, **fields: Any) -> tuple[int, Any]:
    body = {
        "reviewer_badge": REVIEWER,
        "pin": REVIEWER_PIN,
        "fallback": "scan_for_weight",
        "reason_code": "scale_fault",
        "minutes": 30,
    } | fields
    return station.call("POST", "/api/screen/degraded", body)


def scale_state(station: RunningStation) -> str:
    devices = station.call("GET", "/api/status")[1]["devices"]
    return next(d["state"] for d in devices if d["name"] == "scale")


def test_unit_scans_stand_in_for_a_dead_scale_only_once_a_reviewer_allows_it(
    station: RunningStation,
) -> None:
    rig = station.rig
    rig.scale.disconnect()
    station.wait_for(lambda: scale_state(station) == "down")
    rig.pack(PACKER, ORDER, "C1", "BOX-S")
    station.wait_for(lambda: station.state() is SessionState.BLOCKED)

    assert degraded(station, minutes=24 * 60)[0] == 400  # longer than policy allows
    assert degraded(station, pin="0000")[0] == 403
    code, body = degraded(station, reviewer_badge=PACKER)
    assert code == 409 and "own_station" in body["message"]
    code, status = degraded(station)
    assert code == 200 and status["degraded"]["authorised_by"] == REVIEWER

    barcodes = {
        sku: item.barcodes[0].code for sku, item in rig.catalog.items.items() if item.barcodes
    }
    for sku in rig.units_of(rig.manifest(ORDER, "C1")):
        if sku in barcodes:  # the gift note has none: inserts are never demanded
            rig.scan(barcodes[sku])
    rig.close()
    station.wait_for(lambda: station.state() is SessionState.IDLE)

    code, evidence = station.call(
        "GET", f"/api/evidence?order_id={ORDER}&carton_id=C1", token=TOKEN
    )
    first, last = evidence["attempts"][0], evidence["attempts"][-1]
    assert first["verdict"]["outcome"] == "REVIEW" and first["degraded"] is None
    assert last["verdict"]["outcome"] == "PASS"
    assert last["degraded"]["fallback"] == "scan_for_weight"

    code, status = degraded(station, fallback=None)
    assert code == 200 and status["degraded"] is None
    assert degraded(station, fallback=None)[0] == 409
