"""The weigh-one-unit mode: a pure part of the session, between cartons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    CodeClassifier,
    CodePatternsConfig,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    ShippingLabelCode,
    UnknownCode,
    WeighUnitCode,
)
from station.session import (
    CaptureWeight,
    FetchManifest,
    RecordWeightSample,
    Scanned,
    SessionState,
    ShowMessage,
    Tick,
    WeighSubject,
    WeightCaptured,
)

from .conftest import make_catalog
from .drive import ORDER, PACKER, drive_to, new_session

WEIGH = Scanned(WeighUnitCode())


def weighing():
    session, clock = new_session(timeout_s=600)
    drive_to(session, SessionState.IDLE)
    effects = session.handle(WEIGH)
    assert session.state is SessionState.WEIGHING
    assert [e.key for e in effects if isinstance(e, ShowMessage)] == ["weigh.started"]
    return session, clock


def keys(effects) -> list[str]:
    return [e.key for e in effects if isinstance(e, ShowMessage)]


def test_the_code_is_classified_and_configurable():
    catalog = make_catalog()
    assert CodeClassifier(CodePatternsConfig(), catalog).classify("WEIGH-UNIT") == WeighUnitCode()
    custom = CodePatternsConfig(weigh_unit=r"^\*WEIGH\*$")
    assert CodeClassifier(custom, catalog).classify("*WEIGH*") == WeighUnitCode()
    assert isinstance(CodeClassifier(custom, catalog).classify("WEIGH-UNIT"), UnknownCode)
    with pytest.raises(ValueError, match="must differ"):
        CodePatternsConfig(weigh_unit=r"^CLOSE$")


@pytest.mark.parametrize(
    "state",
    [
        SessionState.LOGGED_OUT,
        SessionState.LOADING,
        SessionState.AWAITING_BOX,
        SessionState.PACKING,
        SessionState.VERIFYING,
        SessionState.BLOCKED,
    ],
)
def test_only_with_a_packer_and_no_carton_open(state):
    session, _ = new_session()
    drive_to(session, state)
    effects = session.handle(WEIGH)
    assert session.state is state
    assert keys(effects) == ["scan.not_now"]


@pytest.mark.parametrize(
    ("code", "subject", "captured_key"),
    [
        (
            ItemCode("TEA-1", 6),
            WeighSubject("unit", "TEA-1", 6, "Green tea"),
            "weigh.captured_unit",
        ),
        (BoxCode("BOX-S"), WeighSubject("box", "BOX-S", 1, "Small box"), "weigh.captured_box"),
        (
            UnknownCode(" 4099999999999\r"),
            WeighSubject("unknown", "4099999999999"),
            "weigh.captured_unknown",
        ),
    ],
)
def test_a_scan_captures_the_settled_weight(code, subject, captured_key):
    session, _ = weighing()
    effects = session.handle(Scanned(code))
    (capture,) = [e for e in effects if isinstance(e, CaptureWeight)]
    assert capture.subject == subject
    effects = session.handle(WeightCaptured(capture.request, 612.4, 0.5))
    (record,) = [e for e in effects if isinstance(e, RecordWeightSample)]
    assert (record.subject, record.grams, record.scale_error_g) == (subject, 612.4, 0.5)
    assert record.packer_badge == PACKER
    assert keys(effects) == [captured_key]
    assert session.state is SessionState.WEIGHING  # the next unit may follow


@pytest.mark.parametrize(
    ("sku", "key"), [("GIFT-SET-1", "weigh.kit"), ("CHEESE-1", "weigh.variable_weight")]
)
def test_a_kit_or_a_unit_sold_by_weight_is_not_weighed_as_one_unit(sku, key):
    """A kit is packed as its components (each weighed on its own); a unit sold by weight has
    no one weight to learn. Neither is read, and the mode goes on."""
    session, _ = weighing()
    effects = session.handle(Scanned(ItemCode(sku, 1)))
    assert not any(isinstance(e, CaptureWeight) for e in effects)
    assert keys(effects) == [key]
    assert session.state is SessionState.WEIGHING
    effects = session.handle(Scanned(ItemCode("MUG-1", 1)))
    assert any(isinstance(e, CaptureWeight) for e in effects)


def test_a_failed_reading_records_nothing_and_says_why():
    session, _ = weighing()
    (capture,) = [
        e for e in session.handle(Scanned(ItemCode("MUG-1", 1))) if isinstance(e, CaptureWeight)
    ]
    effects = session.handle(WeightCaptured(capture.request, None, problem="unstable"))
    assert not any(isinstance(e, RecordWeightSample) for e in effects)
    (message,) = [e for e in effects if isinstance(e, ShowMessage)]
    assert message.key == "weigh.failed" and message.params["problem"] == "unstable"
    (capture,) = [
        e for e in session.handle(Scanned(ItemCode("MUG-1", 1))) if isinstance(e, CaptureWeight)
    ]
    effects = session.handle(WeightCaptured(capture.request, None, problem="empty_platter"))
    assert keys(effects) == ["weigh.empty_platter"]
    assert not any(isinstance(e, RecordWeightSample) for e in effects)


def test_one_capture_at_a_time_and_stale_results_are_dropped():
    session, _ = weighing()
    first = session.handle(Scanned(ItemCode("MUG-1", 1)))
    (capture,) = [e for e in first if isinstance(e, CaptureWeight)]
    busy = session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert keys(busy) == ["weigh.busy"] and not any(isinstance(e, CaptureWeight) for e in busy)
    assert session.handle(WeightCaptured(capture.request - 1, 100.0)) == []
    assert any(
        isinstance(e, RecordWeightSample)
        for e in session.handle(WeightCaptured(capture.request, 350.0))
    )
    assert session.handle(WeightCaptured(capture.request, 350.0)) == []  # answered already


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (WeighUnitCode(), SessionState.IDLE),
        (CloseCode(), SessionState.IDLE),
        (LogoutCode(), SessionState.LOGGED_OUT),
        (ORDER, SessionState.LOADING),
        (BadgeCode("P2"), SessionState.WEIGHING),
        (ShippingLabelCode("1Z999AA10123456784"), SessionState.WEIGHING),
    ],
)
def test_leaving_and_other_scans(code, state):
    session, _ = weighing()
    pending = [
        e for e in session.handle(Scanned(ItemCode("MUG-1", 1))) if isinstance(e, CaptureWeight)
    ]
    effects = session.handle(Scanned(code))
    assert session.state is state
    assert keys(effects), "the packer is always told"
    if state is SessionState.LOADING:
        assert any(isinstance(e, FetchManifest) for e in effects)
    if state is not SessionState.WEIGHING:  # a result arriving after leaving is stale
        assert session.handle(WeightCaptured(pending[0].request, 350.0)) == []


def test_inactivity_logs_out_of_weigh_mode():
    session, clock = weighing()
    session.handle(Tick(clock.monotonic() + 600))
    assert session.state is SessionState.LOGGED_OUT


CODES = st.one_of(
    st.just(WeighUnitCode()),
    st.just(CloseCode()),
    st.builds(ItemCode, st.sampled_from(["MUG-1", "TEA-1"]), st.integers(1, 6)),
    st.builds(BoxCode, st.sampled_from(["BOX-S", "BOX-M"])),
    st.builds(UnknownCode, st.text(max_size=200)),
    st.just(BadgeCode("P2")),
    st.just(OrderCartonCode("Z-9", "1")),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.builds(Scanned, CODES),
            st.builds(
                WeightCaptured,
                st.integers(0, 6),
                st.none() | st.floats(0.1, 20_000),
                st.floats(0, 5),
                st.sampled_from(["", "unstable"]),
            ),
        ),
        max_size=25,
    )
)
def test_every_record_answers_the_capture_it_was_asked_for(steps):
    """Whatever the order of scans and results, a sample is recorded only for the subject of
    the latest pending request, once, and only while weighing."""
    session, _ = new_session(timeout_s=600)
    drive_to(session, SessionState.IDLE)
    session.handle(WEIGH)
    requests: dict[int, WeighSubject] = {}
    answered: set[int] = set()
    for step in steps:
        before = session.state
        effects = session.handle(step)
        for effect in effects:
            if isinstance(effect, CaptureWeight):
                assert before is SessionState.WEIGHING
                requests[effect.request] = effect.subject
            if isinstance(effect, RecordWeightSample):
                assert isinstance(step, WeightCaptured) and step.grams is not None
                assert before is SessionState.WEIGHING
                assert effect.subject == requests[step.request]
                assert step.request == max(requests) and step.request not in answered
                answered.add(step.request)
                assert len(effect.subject.key) <= 128
