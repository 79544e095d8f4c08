"""A carton opened again after it left the station (or was replaced) numbers its attempts on from
the ones the evidence store holds: events and records never repeat an attempt number."""

from __future__ import annotations

from station.codes import BoxCode, CloseCode, OrderCartonCode
from station.session import ManifestLoaded, RecordAudit, Scanned, SessionState

from .drive import collect_attempt, drive_to, manifest, new_session


def opened_again(earlier_attempts: int):
    session, _ = new_session()
    drive_to(session, SessionState.LOADING)
    session.handle(ManifestLoaded(manifest(), earlier_attempts=earlier_attempts))
    session.handle(Scanned(BoxCode("BOX-S")))
    assert session.state is SessionState.PACKING
    return session


def test_its_next_close_is_the_attempt_after_the_evidence_stores_last() -> None:
    session = opened_again(2)
    assert collect_attempt(session.handle(Scanned(CloseCode()))) == 3
    fresh = opened_again(0)
    assert collect_attempt(fresh.handle(Scanned(CloseCode()))) == 1


def test_until_it_is_closed_again_another_order_replaces_it() -> None:
    """Opened again by mistake: the packer scans the next order without closing it, as for a
    carton never closed."""
    session = opened_again(2)
    effects = session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert [e.kind for e in effects if isinstance(e, RecordAudit)] == ["carton.replaced"]
    assert session.open_carton == ("B-2", "1")
