"""Random input sequences: the session never raises, never passes a carton without evidence for
the current attempt that a required channel vouched for, and never resolves what it never
detected."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    RemoveUnitCode,
    ShippingLabelCode,
    UnknownCode,
    WeighUnitCode,
)
from station.session import (
    MISSING_DETECTED,
    MISSING_RESOLVED,
    VERIFICATION_RESULT,
    CollectEvidence,
    DeviceFault,
    DeviceRecovered,
    EvidenceReady,
    FinalWeight,
    LabelGranted,
    ManifestChanged,
    ManifestLoaded,
    ManifestRefused,
    PublishEvent,
    Scanned,
    SetDiverter,
    SetLight,
    Tick,
    WeightCaptured,
    WeightInfo,
)
from station.verification import ChannelState

from .drive import ORDER, manifest, new_session, weight_report

ORDERS = st.sampled_from([ORDER, OrderCartonCode("B-2", "1")])
# Packing scans are listed more than once so random runs get past the box scan and the close
# often enough; logout and unknown codes once.
PACKING_SCANS = st.one_of(
    ORDERS,
    st.builds(BoxCode, st.sampled_from(["BOX-S", "BOX-M"])),
    st.builds(ItemCode, st.sampled_from(["MUG-1", "TEA-1", "SPOON-1"]), st.integers(1, 6)),
    st.sampled_from([CloseCode(), ShippingLabelCode("1Z999AA10123456784")]),
)
CODES = st.one_of(
    PACKING_SCANS,
    PACKING_SCANS,
    PACKING_SCANS,
    st.builds(BadgeCode, st.sampled_from(["P1", "P2"])),
    st.just(LogoutCode()),
    st.just(UnknownCode("junk")),
    st.just(WeighUnitCode()),
    st.just(RemoveUnitCode()),
)
REPORTS = st.tuples(
    st.builds(
        weight_report,
        st.dictionaries(st.sampled_from(["MUG-1", "TEA-1"]), st.integers(1, 1), max_size=2),
        st.sampled_from(list(ChannelState)),
    )
)


class SessionMachine(RuleBasedStateMachine):
    @initialize(
        mode=st.sampled_from(["shadow", "enforce"]),
        close_by=st.sampled_from(["code", "label", "either"]),
    )
    def start(self, mode, close_by):
        self.session, self.clock = new_session(mode, close_by, timeout_s=600)
        self.mode = mode
        self.collected: dict[tuple[str, str], int] = {}  # carton -> last attempt collected
        self.detected: set[tuple[str, str]] = set()
        self.output_down = False
        self.route: str | None = None
        self._handle(Scanned(BadgeCode("P1")))

    def _handle(self, event):
        carton = self.session.open_carton
        effects = self.session.handle(event)
        for effect in effects:
            self._check(effect, event, carton)
        return effects

    def _check(self, effect, event, carton):
        if isinstance(effect, CollectEvidence):
            self.collected[carton] = effect.attempt
        if isinstance(effect, SetLight) and self.mode == "shadow":
            assert effect.color != "red"
        if isinstance(effect, SetDiverter):
            self.route = effect.route
            assert self.mode == "enforce" or effect.route == "straight"  # shadow never diverts
        if not isinstance(effect, PublishEvent) or "order_id" not in effect.data:
            return
        key = (effect.data["order_id"], effect.data["carton_id"])
        if effect.kind == VERIFICATION_RESULT and effect.data["outcome"] == "PASS":
            assert isinstance(event, EvidenceReady)
            assert event.attempt == self.collected[key] == effect.data["attempt"]
            assert all(r.state is ChannelState.OK for r in event.reports)
            assert not (self.output_down and self.mode == "enforce")
        if effect.kind == MISSING_DETECTED:
            self.detected.add(key)
        if effect.kind == MISSING_RESOLVED:
            assert key in self.detected

    @rule(code=CODES)
    def scan(self, code):
        self._handle(Scanned(code))

    @rule(order=ORDERS, version=st.integers(1, 3), cancelled=st.booleans())
    def manifest_loaded(self, order, version, cancelled):
        status = "cancelled" if cancelled else "open"
        self._handle(ManifestLoaded(manifest(order, version, status=status)))

    @rule()
    def manifest_for_the_open_carton(self):
        """Answers the fetch the session is waiting for: random orders rarely match it."""
        if self.session.open_carton:
            order = OrderCartonCode(*self.session.open_carton)
            self._handle(ManifestLoaded(manifest(order)))

    @rule(order=ORDERS)
    def manifest_refused(self, order):
        self._handle(ManifestRefused(order.order_id, order.carton_id, "timeout", "no answer"))

    @rule(
        attempt=st.integers(0, 4),
        reports=REPORTS,
        grams=st.sampled_from([None, 1000.0]),
    )
    def evidence(self, attempt, reports, grams):
        self._handle(EvidenceReady(attempt, reports, WeightInfo(grams, 1000.0, 30.0)))

    @rule()
    def pack_and_close_the_open_carton(self):
        """Manifest, box and close for the open carton: random scans rarely line up into a close
        attempt, and the verdict paths need them."""
        if self.session.packer is None:
            self._handle(Scanned(BadgeCode("P1")))
        if self.session.open_carton is None:
            self._handle(Scanned(ORDER))
        if self.session.open_carton:
            self.manifest_for_the_open_carton()
            self._handle(Scanned(BoxCode("BOX-M")))
            self._handle(Scanned(CloseCode()))

    @rule()
    def whole_carton_evidence(self):
        """Answers the open attempt with a carton that is all there: random attempts and reports
        rarely do, and the PASS paths need it."""
        view = self.session.carton_view()
        if view is not None:
            weight = WeightInfo(1000.0, 1000.0, 30.0)
            self._handle(EvidenceReady(view.attempts, (weight_report(),), weight))

    @rule(grams=st.sampled_from([None, 900.0, 1000.0, 1010.0]))
    def final_weight(self, grams):
        carton = self.session.awaiting_label or (ORDER.order_id, ORDER.carton_id)
        self._handle(FinalWeight(*carton, grams))

    @rule(label=st.sampled_from(["1Z999AA10123456784", "1Z999AA10123456792"]))
    def label_granted(self, label):
        carton = self.session.awaiting_label or (ORDER.order_id, ORDER.carton_id)
        self._handle(LabelGranted(*carton, label))

    @rule(down=st.booleans())
    def output_health(self, down):
        if down:
            self._handle(DeviceFault("actuator plc", "no answer", output=True))
        else:
            self._handle(DeviceRecovered("actuator plc"))
        self.output_down = down

    @rule(order=ORDERS, kind=st.sampled_from(["cancelled", "superseded"]))
    def manifest_changed(self, order, kind):
        self._handle(ManifestChanged(order.order_id, order.carton_id, kind))

    @rule(seconds=st.sampled_from([1.0, 1.0, 300.0, 700.0]))
    def time_passes(self, seconds):
        self.clock.advance(seconds)
        self._handle(Tick(self.clock.monotonic()))

    @rule(request=st.integers(0, 5), grams=st.none() | st.floats(1, 5_000))
    def weight_captured(self, request, grams):
        self._handle(WeightCaptured(request, grams))

    @rule()
    def device_fault(self):
        self._handle(DeviceFault("scale", "timeout"))

    @invariant()
    def an_open_carton_is_diverted(self):
        if self.mode == "enforce" and self.session.open_carton is not None:
            assert self.route == "exception"

    @invariant()
    def a_scan_taken_back_never_leaves_fewer_than_none(self):
        view = self.session.carton_view()
        if view is not None:
            assert all(units >= 0 for units in view.scanned_units.values())

    @invariant()
    def nobody_no_carton(self):
        if self.session.packer is None:
            assert self.session.open_carton is None


SessionMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestSessionMachine = SessionMachine.TestCase
