"""A reviewer releases a held carton: audited, and shipped short when items are missing."""

from __future__ import annotations

from station.codes import BadgeCode, CloseCode
from station.event_shapes import logical_key, to_event
from station.events import EventType
from station.session import (
    MISSING_SHIPPED_SHORT,
    EvidenceReady,
    PublishEvent,
    RecordAudit,
    ReviewerOverride,
    Scanned,
    SessionState,
    ShowMessage,
)
from station.verification import ChannelState

from .drive import PACKER, drive_to, new_session, weight_report


def test_release_of_a_short_carton_publishes_shipped_short_and_audits() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)  # one TEA-1 short
    effects = session.handle(ReviewerOverride("LEAD-1", "reissue_approved"))
    assert session.state is SessionState.IDLE and session.open_carton is None
    audit = next(e for e in effects if isinstance(e, RecordAudit))
    assert audit.kind == "carton.released"
    assert audit.data["reviewer_badge"] == "LEAD-1" and audit.data["packer_badge"] == PACKER
    event = next(e for e in effects if isinstance(e, PublishEvent))
    assert event.kind == MISSING_SHIPPED_SHORT
    event_type, payload, subject = to_event(event, "pack-01", "dc-1")
    assert event_type is EventType.MISSING_ITEM_SHIPPED_SHORT and subject == "A-1/1"
    assert payload.reviewer_id == "LEAD-1"
    assert [(line.sku, line.quantity_missing) for line in payload.missing_lines] == [("TEA-1", 1)]
    assert payload.reasons[0].code == "reissue_approved"


def shipped_short_key(effects) -> str | None:
    (event,) = [e for e in effects if isinstance(e, PublishEvent)]
    event_type, payload, _ = to_event(event, "pack-01", "dc-1")
    return logical_key(event_type, payload)


def test_a_release_undone_and_given_again_is_the_same_shipped_short_event() -> None:
    """The release's record could not be written, so its step was undone after its event was
    committed; released again (by another reviewer, say), it keeps the event's id: the
    backend must not reissue twice. A release after another close is another event."""
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)  # one TEA-1 short
    before = session.snapshot()
    first = shipped_short_key(session.handle(ReviewerOverride("LEAD-1", "reissue_approved")))
    session.roll_back(before)
    again = shipped_short_key(session.handle(ReviewerOverride("LEAD-2", "reissue_approved")))
    assert first is not None and again == first

    session.roll_back(before)
    session.handle(Scanned(CloseCode()))
    session.handle(EvidenceReady(2, (weight_report({"TEA-1": 1}),)))  # attempt 2: still short
    assert session.state is SessionState.BLOCKED
    later = shipped_short_key(session.handle(ReviewerOverride("LEAD-1", "reissue_approved")))
    assert later not in (None, first)


def test_release_of_a_review_without_missing_items_publishes_nothing() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    session.handle(EvidenceReady(1, (weight_report(state=ChannelState.DOWN),)))  # REVIEW
    assert session.state is SessionState.BLOCKED
    effects = session.handle(ReviewerOverride("LEAD-1", "scale_fault"))
    assert not any(isinstance(e, PublishEvent) for e in effects)
    assert session.state is SessionState.IDLE


def test_the_packer_cannot_release_their_own_carton() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    effects = session.handle(ReviewerOverride(PACKER, "reissue_approved"))
    assert session.state is SessionState.BLOCKED
    assert effects == [ShowMessage("warning", "override.own_carton", {"reviewer_badge": PACKER})]


def test_a_hand_over_does_not_let_the_packer_release_their_own_carton():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    session.handle(Scanned(BadgeCode("SOMEONE-ELSE")))
    assert session.override_refusal(PACKER) == "override.own_carton"
    refused = session.handle(ReviewerOverride(PACKER, "found_later"))
    assert session.state is SessionState.BLOCKED
    assert not [e for e in refused if isinstance(e, PublishEvent)]
