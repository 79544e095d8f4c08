"""The Station API against a running station: who may do what, bad input, and the shipping
software's label permission after PASS, BLOCK and a reviewer's release."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from simulators.broker import MosquittoBroker
from station.api.openapi import openapi_document, render
from station.api.server import ROUTES
from station.events import EventType
from station.evidence import IMAGES_DIR, EvidenceStore
from station.session import SessionState
from tests.evidence.test_daemon_evidence import Listener

from .conftest import PACKER, REVIEWER, REVIEWER_PIN, TOKEN, RunningStation, run_station

REPO = Path(__file__).resolve().parents[2]
PERMISSION = "/api/label-permission?order_id=ORD-1003&carton_id=C1"


def override(station: RunningStation, badge: str = REVIEWER, pin: str = REVIEWER_PIN):
    body = {"reviewer_badge": badge, "pin": pin, "reason_code": "reissue_approved"}
    return station.call("POST", "/api/screen/override", body)


def test_reads_are_open_and_health_reports_devices(station: RunningStation) -> None:
    # Every device has been up once; the broker connection may still be on its way.
    station.wait_for(lambda: station.call("GET", "/api/status")[1]["ready"])
    code, status = station.call("GET", "/api/status")
    assert code == 200 and status["ready"] and status["state"] == "logged_out"
    names = {d["name"] for d in status["devices"]}
    assert names == {"actuator simulated", "scale", "scanner handheld", "mqtt"}
    assert station.call("GET", "/api/health/live") == (200, {"status": "alive"})
    assert station.call("GET", "/api/health/ready")[1] == {"ready": True, "problems": []}
    assert station.call("GET", "/api/openapi.json") == (200, openapi_document(ROUTES))
    # The screen is open to the station PC, so nothing it loads may carry the API token.
    for path in ("/screen/", "/screen/screen.js", "/api/screen", "/api/status", "/api/session"):
        code, body = station.call("GET", path)
        assert code == 200 and TOKEN not in (body if isinstance(body, str) else json.dumps(body))


def test_changing_actions_need_the_token(station: RunningStation) -> None:
    start = {"order_id": "ORD-1001", "carton_id": "C1"}
    for token in (None, "wrong-token"):
        code, body = station.call("POST", "/api/session/start", start, token=token)
        assert code == 401 and "Bearer" in body["message"]
        code, _ = station.call("GET", "/api/evidence?order_id=A&carton_id=B", token=token)
        assert code == 401
    assert station.state() is SessionState.LOGGED_OUT


def test_start_and_close_with_the_token_drive_the_session(station: RunningStation) -> None:
    start = {"order_id": "ORD-1001", "carton_id": "C1"}
    code, body = station.call("POST", "/api/session/start", start, token=TOKEN)
    assert code == 409 and "scan.not_now" in body["message"]  # nobody is logged in
    station.rig.scan(f"BADGE-{PACKER}")
    station.wait_for(lambda: station.state() is SessionState.IDLE)
    code, body = station.call("POST", "/api/session/start", start, token=TOKEN)
    assert code == 200 and body["carton"]["order_id"] == "ORD-1001"
    code, body = station.call("POST", "/api/session/close", {}, token=TOKEN)
    assert code == 409 and "not_now" in body["message"]  # no box scanned yet


def test_bad_input_is_rejected_with_a_message(station: RunningStation) -> None:
    cases = [
        (("POST", "/api/session/start", {"order_id": "ORD 1"}), 422, "carton_id"),
        (("POST", "/api/session/start", {"order_id": "A", "carton_id": "B", "x": 1}), 422, "x"),
        (("GET", "/api/label-permission?order_id=ORD-1"), 400, "carton_id"),
        (("GET", "/api/nothing-here"), 404, "no such resource"),
        (("DELETE", "/api/status"), 405, "GET"),
    ]
    for (method, path, *body), status, words in cases:
        code, answer = station.call(method, path, *body, token=TOKEN)
        assert code == status and words in answer["message"], (path, answer)
    code, answer = station.call(
        "POST", "/api/session/close", {}, token=TOKEN, content_type="text/plain"
    )
    assert code == 415 and "application/json" in answer["message"]


def test_the_api_listens_on_localhost_only_by_default(station: RunningStation) -> None:
    port = int(station.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # Another address of this host (Linux routes all of 127/8 to lo): a wildcard bind would
    # answer it, a localhost bind refuses.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()


def test_malformed_http_gets_a_400(station: RunningStation) -> None:
    port = int(station.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert raw.recv(200).startswith(b"HTTP/1.1 400")


def test_label_permission_follows_the_verdict_and_the_release(station: RunningStation) -> None:
    assert station.call("GET", PERMISSION)[0] == 401  # it audits and grants: the token's
    assert station.call("GET", PERMISSION, token=TOKEN)[1]["reason"] == "not_verified"
    station.pack_short()
    permission = station.call("GET", PERMISSION, token=TOKEN)[1]
    assert permission["allowed"] is False and permission["reason"] == "held"
    code, _ = override(station)
    assert code == 200 and station.state() is SessionState.IDLE
    permission = station.call("GET", PERMISSION, token=TOKEN)[1]
    assert permission["allowed"] and permission["released_by"] == REVIEWER
    code, evidence = station.call(
        "GET", "/api/evidence?order_id=ORD-1003&carton_id=C1", token=TOKEN
    )
    assert code == 200 and len(evidence["attempts"]) == 1
    assert evidence["releases"][0]["reason_code"] == "reissue_approved"
    # The records themselves, in chain order, with their hashes and positions.
    kinds = [r["kind"] for r in evidence["records"]]
    assert kinds[:3] == ["carton.plan", "attempt", "carton.released"], kinds
    attempt, release = evidence["records"][1:3]
    assert attempt["seq"] < release["seq"] and len(release["sha256"]) == 64
    assert evidence["chain"]["genesis"] == station.daemon.evidence.genesis
    assert evidence["chain"]["head"]["record_id"] >= release["seq"]
    code, one = station.call("GET", f"/api/evidence/record?id={attempt['seq']}", token=TOKEN)
    assert code == 200 and one["sha256"] == attempt["sha256"] and one["body"]["attempt"] == 1
    assert station.call("GET", "/api/evidence/record?id=99999", token=TOKEN)[0] == 404
    assert station.call("GET", "/api/evidence/record?id=x", token=TOKEN)[0] == 400


def test_the_screen_override_checks_the_reviewer(station: RunningStation) -> None:
    assert override(station)[0] == 409  # nothing held yet
    station.pack_short()
    code, body = override(station, badge=PACKER)  # a valid reviewer, but they packed it
    assert code == 403 and "own carton" in body["message"]
    assert override(station, pin="0000")[0] == 403
    assert override(station, pin="1111")[0] == 403
    assert override(station, badge=REVIEWER_PIN)[0] == 403  # the PIN in the badge field
    assert station.state() is SessionState.BLOCKED
    with sqlite3.connect(station.daemon.evidence.path) as db:
        rows = db.execute("SELECT body FROM records WHERE kind = 'override.refused'").fetchall()
    badges = [json.loads(body)["reviewer_badge"] for (body,) in rows]
    # ...is not written into the evidence: a badge no reviewer has is not kept.
    assert badges == [REVIEWER, PACKER, REVIEWER, REVIEWER, "(not a reviewer's badge)"]
    code, body = override(station)  # three wrong entries (the limit) lock the station out
    assert code == 429 and "try again" in body["message"]
    assert station.state() is SessionState.BLOCKED
    # The supervisor tool's route is the same lock: its token stands in for no PIN.
    assert token_override(station, REVIEWER_PIN)[0] == 429


def token_override(
    station: RunningStation, pin: str | None, reason: str = "customer_agreed", **named: object
):
    body: dict[str, object] = {"reviewer_badge": REVIEWER, "reason_code": reason, **named}
    if pin is not None:
        body["pin"] = pin
    return station.call("POST", "/api/session/override", body, token=TOKEN)


def test_the_token_override_still_needs_the_reviewers_badge_and_pin(
    station: RunningStation,
) -> None:
    station.pack_short()
    assert token_override(station, None)[0] == 422  # a token alone is no reviewer
    assert token_override(station, REVIEWER_PIN, reason="not_a_reason")[0] == 400
    assert token_override(station, "0000")[0] == 403
    assert station.state() is SessionState.BLOCKED
    # A release names the carton the reviewer looked at: another one, or an older attempt of
    # it, is refused rather than landing on the carton held now.
    for named in ({"order_id": "ORD-1001"}, {"order_id": "ORD-1003", "attempt": 2}):
        code, body = token_override(station, REVIEWER_PIN, **named)
        assert code == 409 and "the held carton is ORD-1003/C1 attempt 1" in body["message"]
    assert station.state() is SessionState.BLOCKED
    held = {"order_id": "ORD-1003", "carton_id": "C1", "attempt": 1}
    assert token_override(station, REVIEWER_PIN, **held)[0] == 200
    assert station.state() is SessionState.IDLE


def test_a_release_that_cannot_be_recorded_is_refused_and_given_again_keeps_its_event_id(
    station: RunningStation, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped-short event is committed before the release's audit, which a full disk
    refuses: the step is undone, the carton still held, and the API says so (not 200). The
    release given again once the disk is freed is the same event to the reissue backend."""
    listener = Listener(broker.host, broker.port)
    record_audit = EvidenceStore.record_audit
    full = [True]

    def on_a_full_disk(self: EvidenceStore, kind: str, *args: Any) -> Any:
        if full[0] and kind == "carton.released":
            raise sqlite3.OperationalError("database or disk is full")
        return record_audit(self, kind, *args)

    monkeypatch.setattr(EvidenceStore, "record_audit", on_a_full_disk)
    try:
        station.pack_short("ORD-1002")  # BLOCK: the cookbook is missing
        held = {"order_id": "ORD-1002", "carton_id": "C1"}
        code, body = token_override(station, REVIEWER_PIN, **held)
        assert code == 503 and "still held" in body["message"]
        assert station.state() is SessionState.BLOCKED
        full[0] = False
        station.wait_for(lambda: station.call("GET", "/api/health/ready")[1]["ready"])
        assert token_override(station, REVIEWER_PIN, **held)[0] == 200
        # Committed twice: published twice, or once if the first was still pending.
        station.wait_for(lambda: station.daemon.outbox.depth() == 0)
        station.wait_for(lambda: bool(listener.of_type(EventType.MISSING_ITEM_SHIPPED_SHORT)))
        shipped = listener.of_type(EventType.MISSING_ITEM_SHIPPED_SHORT)
    finally:
        listener.close()
    assert len({event["id"] for event in shipped}) == 1
    assert [line["sku"] for line in shipped[0]["data"]["missing_lines"]] == ["BOOK-COOK"]


def test_pins_guessed_all_at_once_are_still_locked_out_after_the_limit(
    station: RunningStation,
) -> None:
    """Each PIN check (50 ms of scrypt) runs off the loop: guesses sent together must not all
    pass the lockout test before the first wrong one is counted."""
    station.pack_short()
    with ThreadPoolExecutor(12) as pool:
        codes = sorted(
            pool.map(lambda pin: override(station, pin=pin)[0], [f"{n:04d}" for n in range(12)])
        )
    assert codes == [403] * 3 + [429] * 9, codes
    assert station.state() is SessionState.BLOCKED


def test_a_restart_does_not_give_back_the_wrong_pins_already_spent(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """Three wrong PINs, then tries while locked out (each one audited too: more than a page
    of the chain), then the station restarts: the audit trail recalls the wrong PINs of the
    lockout window, so the next try is locked out, not a fresh set of three guesses."""
    workdir = tmp_path / "station"
    for station in run_station(workdir, broker):
        station.pack_short()
        assert [override(station, pin=f"{n:04d}")[0] for n in range(3)] == [403] * 3
        assert {override(station, pin="0000")[0] for _ in range(520)} == {429}
    for again in run_station(workdir, broker):
        assert again.state() is SessionState.BLOCKED  # the held carton is restored at start
        assert override(again)[0] == 429
        assert again.state() is SessionState.BLOCKED


def test_metrics_count_verdicts_reasons_latency_and_reconnects(station: RunningStation) -> None:
    station.pack_short()
    code, text = station.call("GET", "/metrics")
    assert code == 200
    assert 'packstation_verdicts_total{mode="enforce",outcome="REVIEW"} 1' in text
    reason = 'packstation_verdict_reasons_total{outcome="REVIEW",reason="sku_unverified"} 1'
    assert reason in text
    assert 'packstation_channel_latency_seconds_count{channel="weight"} 1' in text
    assert "packstation_outbox_depth " in text

    def scale_is(state: str) -> bool:
        devices = station.call("GET", "/api/status")[1]["devices"]
        return any(d["name"] == "scale" and d["state"] == state for d in devices)

    reconnects = 'packstation_device_reconnects_total{device="scale"} 1'
    assert reconnects not in text
    station.rig.scale.set_silent(True)  # the scale stops answering: down after stale_after_s
    station.wait_for(lambda: scale_is("down"), timeout=20)
    station.rig.scale.set_silent(False)
    station.wait_for(lambda: scale_is("up"), timeout=20)
    assert reconnects in station.call("GET", "/metrics")[1]


def test_openapi_is_valid_served_and_committed() -> None:
    document = openapi_document(ROUTES)
    validate(document)
    served_paths = {route.path for route in ROUTES}
    assert set(document["paths"]) == served_paths
    committed = (REPO / "docs" / "openapi.json").read_text()
    assert committed == render(), "run `packstation openapi --write docs/openapi.json`"
    assert json.loads(committed)["openapi"] == "3.1.0"


def test_evidence_images_are_served_by_their_hash_only_while_it_holds(
    station: RunningStation,
) -> None:
    frame = bytes(range(256)) * 40  # any bytes; the station serves files, it does not decode them
    digest = hashlib.sha256(frame).hexdigest()
    folder = station.daemon.config.station.data_dir / IMAGES_DIR / "ORD-1003"
    folder.mkdir(parents=True)
    (folder / f"insertion-1-{digest[:12]}.jpg").write_bytes(frame)
    url = f"/api/evidence/image?sha256={digest}"
    request = urllib.request.Request(station.base_url + url)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg" and response.read() == frame
    (folder / f"insertion-1-{digest[:12]}.jpg").write_bytes(frame[:-1] + b"x")  # altered
    assert station.call("GET", url, token=TOKEN)[0] == 404
    assert station.call("GET", url)[0] == 401
    assert station.call("GET", "/api/evidence/image?sha256=../../etc", token=TOKEN)[0] == 400
