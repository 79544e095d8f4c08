"""Recovery of what the session waits for outside an open carton: a carton that passed and waits
for its shipping label (and final weight), and a weigh-one-unit capture in flight. Before the
snapshot held them, a restart dropped both: the final weight check was skipped for the passed
carton and the capture was lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from station.codes import BadgeCode, BoxCode, CloseCode, ItemCode, ShippingLabelCode, WeighUnitCode
from station.session import (
    STATION_FAULT,
    VERIFICATION_RESULT,
    CaptureWeight,
    EvidenceReady,
    FinalWeight,
    LabelGranted,
    ManifestLoaded,
    PublishEvent,
    RecordAudit,
    RecordWeightSample,
    Scanned,
    Session,
    SessionState,
    SetDiverter,
    SetLight,
    WeighFinal,
    WeighSubject,
    WeightCaptured,
    WeightInfo,
)
from station.session_store import SessionStore

from .drive import ORDER, manifest, new_session, weight_report
from .test_session_snapshot import restarted

KEY = (ORDER.order_id, ORDER.carton_id)
VERDICT_WEIGHT = WeightInfo(measured_g=1000.0, expected_g=1002.0, tolerance_g=15.0)
LABEL = "1Z999AA10123456784"


def passed_waiting_for_label() -> Session:
    session, _ = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(Scanned(ORDER))
    session.handle(ManifestLoaded(manifest()))
    session.handle(Scanned(BoxCode("BOX-S")))
    session.handle(Scanned(CloseCode()))
    session.handle(EvidenceReady(1, (weight_report(),), VERDICT_WEIGHT))
    assert session.state is SessionState.IDLE and session.awaiting_label == KEY
    return session


def fault_of(effects: list) -> PublishEvent:
    (fault,) = [e for e in effects if isinstance(e, PublishEvent)]
    assert fault.kind == STATION_FAULT and fault.data["code"] == "session_recovered"
    return fault


def test_a_passed_carton_still_waits_for_its_label_and_final_weight(tmp_path: Path) -> None:
    fresh, effects = restarted(passed_waiting_for_label(), tmp_path)

    assert fresh.awaiting_label == KEY and fresh.state is SessionState.IDLE
    fault = fault_of(effects)
    assert fault.data["outcome"] == "PASS" and fault.data["attempt"] == 1
    assert "awaiting_label" in str(fault.data["message"])
    # The outputs started afresh: the PASS is shown and routed again.
    assert SetLight("green") in effects and SetDiverter("straight") in effects
    assert not any(isinstance(e, WeighFinal) for e in effects)  # no label scanned yet

    # The label scan is the final weight check it was before the restart, not "no order".
    assert WeighFinal(*KEY) in fresh.handle(Scanned(ShippingLabelCode(LABEL)))
    # Something was taken out while the station was down: the PASS is withdrawn.
    withdrawn = fresh.handle(FinalWeight(*KEY, measured_g=700.0))
    (verdict,) = [e for e in withdrawn if isinstance(e, PublishEvent)]
    assert verdict.kind == VERIFICATION_RESULT and verdict.data["outcome"] == "REVIEW"
    assert fresh.state is SessionState.BLOCKED and fresh.open_carton == KEY


def test_a_final_weight_being_read_is_read_again(tmp_path: Path) -> None:
    session = passed_waiting_for_label()
    session.handle(Scanned(ShippingLabelCode(LABEL)))  # the process dies while it weighs
    fresh, effects = restarted(session, tmp_path)

    assert WeighFinal(*KEY) in effects
    assert "final weight is read again" in str(fault_of(effects).data["message"])
    sealed = fresh.handle(FinalWeight(*KEY, measured_g=998.0))
    audits = [e for e in sealed if isinstance(e, RecordAudit)]
    assert [a.kind for a in audits] == ["carton.sealed"]
    assert audits[0].data["label"] == LABEL and audits[0].data["verdict_g"] == 1000.0
    assert fresh.awaiting_label is None


def test_granted_labels_survive_a_restart(tmp_path: Path) -> None:
    session = passed_waiting_for_label()
    session.handle(LabelGranted(*KEY, LABEL))
    fresh, _ = restarted(session, tmp_path)
    # Another carton's label on this one is still caught.
    effects = fresh.handle(Scanned(ShippingLabelCode("1Z999AA10123456999")))
    (verdict,) = [e for e in effects if isinstance(e, PublishEvent)]
    assert verdict.data["outcome"] == "REVIEW"
    assert verdict.data["reasons"][0]["code"] == "label_mismatch"


def test_a_weigh_capture_in_flight_is_read_again(tmp_path: Path) -> None:
    session, _ = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    session.handle(Scanned(WeighUnitCode()))
    (asked,) = [
        e for e in session.handle(Scanned(ItemCode("MUG-1", 1))) if isinstance(e, CaptureWeight)
    ]
    fresh, effects = restarted(session, tmp_path)

    assert fresh.state is SessionState.WEIGHING
    assert not any(isinstance(e, PublishEvent) for e in effects)  # master data, not a carton
    (again,) = [e for e in effects if isinstance(e, CaptureWeight)]
    assert again.subject == asked.subject == WeighSubject("unit", "MUG-1", 1, "Blue mug")
    assert again.request > asked.request
    # An answer to the dead process's request is stale; the new one is recorded once.
    assert fresh.handle(WeightCaptured(asked.request, 350.0)) == []
    recorded = fresh.handle(WeightCaptured(again.request, 350.0))
    assert [e.subject for e in recorded if isinstance(e, RecordWeightSample)] == [asked.subject]


def test_a_row_of_the_previous_format_still_reads(tmp_path: Path) -> None:
    """Format 1 rows lack the new fields: they read as nothing waiting for a label or a capture."""
    session, _ = new_session()
    session.handle(Scanned(BadgeCode("P1")))
    path = tmp_path / "session.sqlite3"
    store = SessionStore(path)
    store.save(session.snapshot())
    store.close()
    db = sqlite3.connect(path)
    (text,) = db.execute("SELECT snapshot FROM session").fetchone()
    old = {k: v for k, v in json.loads(text).items() if k not in ("awaiting_label", "weighing")}
    old.pop("weigh_requests")
    db.execute("UPDATE session SET format = 1, snapshot = ?", (json.dumps(old),))
    db.commit()
    db.close()
    store = SessionStore(path)
    loaded = store.load()
    store.close()
    assert loaded is not None and loaded.same_state(session.snapshot())
