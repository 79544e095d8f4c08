"""Channel reports and the verification policy that turns them into one verdict. Pure: no I/O.

Every channel (weight, RFID, vision; per-unit scan later) reports the same shape: its own
health for this carton, per-SKU findings with a confidence or "not applicable", and optionally a
carton-level discrepancy it cannot pin on one SKU (a weight deficit). The policy never trusts a
channel that is down, stale or unsure when that channel is required: it fails closed to REVIEW.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

# The reason a carton is held for a recount of a SKU's unit scans (`recount_scan_slips`).
SCAN_RECOUNT = "scan_recount"
# How surely the scale must confirm a SKU to overrule a count's deficit or a tag's silence, or
# to stand in for a backup channel (`VerificationPolicy.overrule_confidence`).
OVERRULE_CONFIDENCE = 0.999
SCALE = "weight"  # the channel whose confirmation alone may stand in for a backup channel


class Outcome(StrEnum):
    PASS = "PASS"
    BLOCK = "BLOCK"
    REVIEW = "REVIEW"


class ChannelState(StrEnum):
    OK = "ok"  # the channel measured this carton and stands by its findings
    DOWN = "down"  # device unavailable
    STALE = "stale"  # no fresh reading for this carton
    UNSURE = "unsure"  # measured, but cannot be trusted (unstable, out of range, drift)


class FindingStatus(StrEnum):
    CONFIRMED = "confirmed"  # the expected quantity is there
    MISSING = "missing"  # fewer units than expected
    EXTRA = "extra"  # more units than expected, or a SKU not on the manifest
    UNCERTAIN = "uncertain"  # the channel looked but cannot tell (e.g. lighter than tolerance)
    NOT_APPLICABLE = "not_applicable"  # the channel cannot see this SKU at all


class Discrepancy(StrEnum):
    NONE = "none"
    DEFICIT = "deficit"
    SURPLUS = "surplus"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # stable machine code, e.g. "weight_deficit", "channel_down"
    message: str  # one human sentence
    channel: str | None = None
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class SkuFinding:
    sku: str
    status: FindingStatus
    expected: int
    observed: int | None  # None when the channel cannot count this SKU
    confidence: float  # 0..1, how sure the channel is of `status`
    detail: str = ""
    # Identifiers that back the finding, e.g. EPCs (hex): for a missing unit the SKU's tags read
    # near the carton but not counted; for extra units the extra tags.
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    """One hypothesis for a carton-level discrepancy: SKU -> units missing (<0) or extra (>0)."""

    delta_units: Mapping[str, int]
    residual_g: float  # how far the hypothesis leaves the measurement from expectation
    likelihood: float  # relative, the best explanation has the largest


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """A file kept as evidence of a report (an annotated camera frame): where, and its digest."""

    path: str
    sha256: str
    media_type: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class ChannelReport:
    channel: str
    state: ChannelState
    findings: tuple[SkuFinding, ...] = ()
    discrepancy: Discrepancy = Discrepancy.NONE
    explanations: tuple[Explanation, ...] = ()
    reasons: tuple[Reason, ...] = ()
    measurements: Mapping[str, float] = field(default_factory=dict)
    # What the channel saw that a person must look at whatever else it found (an RFID tag that
    # maps to no SKU, or one already shipped): the carton goes to REVIEW unless it is blocked.
    review: tuple[Reason, ...] = ()
    # What the report rests on, kept with the verdict and never decided on: the model's hash and
    # version (vision); where each figure compared against came from (weight: each SKU's unit
    # weight and the box's tare, "box:<code>", "catalog" or "learned").
    provenance: Mapping[str, str] = field(default_factory=dict)
    files: tuple[EvidenceFile, ...] = ()

    def finding_for(self, sku: str) -> SkuFinding | None:
        return next((f for f in self.findings if f.sku == sku), None)


@dataclass(frozen=True, slots=True)
class LineDelta:
    sku: str
    quantity: int
    evidence: tuple[str, ...] = ()  # from the findings that decided it (e.g. EPCs), sorted


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    missing: tuple[LineDelta, ...] = ()
    extra: tuple[LineDelta, ...] = ()
    reports: tuple[ChannelReport, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """Which channels must vouch for a carton and how sure a finding must be to act on it."""

    required_channels: frozenset[str] = frozenset({"weight"})
    min_confidence: float = 0.9
    # Channels whose confirmation alone does not verify a SKU (e.g. {"rfid"}: a tag read proves
    # the unit near the antennas; a second channel must vouch for it too).
    corroborate: frozenset[str] = frozenset()
    # Per SKU: channels that must each confirm it (e.g. {"scan"} for a high-value SKU); one that
    # is down, stale, unsure or silent on it holds the carton for REVIEW.
    sku_required: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Per SKU: channels whose findings on it are disregarded (a camera that cannot count it).
    sku_ignored: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Channels on trial: their reports are kept with the verdict but decide nothing (a vision
    # model not yet accurate enough to block on).
    advisory: frozenset[str] = frozenset()
    # Count channels (`overrulable_counts`) required unless the scale vouches for the carton on
    # its own: one that is down, stale, unsure or silent holds the carton for REVIEW, except
    # when the weight confirms every ordered SKU `overrule_confidence` surely, or when the
    # channels that are up name lines surely missing or extra (BLOCK for them, which the count
    # could not have set aside: `_without_backup`). A deficit or
    # surplus it would have counted is then set aside (`_count_overruled`) as long as it claims
    # no more than that; an extra unit its codes read still counts when it reports one. What its
    # silence can lose is what only its identities would have caught (a unit swapped for another
    # of the same weight, read by its code; codes proving more units than it counted).
    backup: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name, others in (("advisory", self.advisory), ("backup", self.backup)):
            both = self.required_channels & others
            if both:
                raise ValueError(f"a channel cannot be both required and {name}: {sorted(both)}")
        if not self.backup <= self.overrulable_counts:
            raise ValueError(
                f"only a count channel ({', '.join(sorted(self.overrulable_counts))}) can be a "
                "backup: the scale's confirmation answers a count, not a tag or a scan"
            )
        if self.surplus_overrule_confidence > self.overrule_confidence:
            raise ValueError("a count's surplus cannot need more than its deficit to be set aside")

    # Channels whose deficit is a class-agnostic count that lists every SKU it could concern
    # (vision: "one item fewer than expected, any of these"). Such a deficit is set aside when
    # another sensor confirms each of those SKUs at least `overrule_confidence` surely (the
    # scale's detection power for every unit the count could have lost; never the unit scans,
    # see `_vouching`): the count miscounted.
    # Their surplus ("one item more", naming no SKU) is set aside when the scale confirms every
    # ordered SKU `surplus_overrule_confidence` surely and no other channel sees anything extra:
    # an extra item the scale cannot see is lighter than its tolerance (an over-shipment the
    # other order's station catches as short), a split or moved item far likelier.
    overrulable_counts: frozenset[str] = frozenset({"vision"})
    # High on purpose: RFID's configured 0.98 must not overrule a count, since a tag read beside
    # the box "confirms" the very unit the count found missing (measured: docs/accuracy.md).
    overrule_confidence: float = OVERRULE_CONFIDENCE
    # A surplus claims nothing missing, so less is needed, and only from the scale (weight,
    # insertion; never a tag, which a unit beside the box answers). A unit missing behind "one
    # more" needs the scale wrong about that unit and the count two too high, an unseen item
    # in its place and the count one too high, or two unseen items of its weight in its place
    # (no confidence of the scale's helps there; the steps do). Measured: docs/accuracy.md.
    surplus_overrule_confidence: float = 0.98
    # Channels whose units are proven by a tag answering (RFID). A unit missing by such a
    # channel while the scale confirms every unit of the SKU `overrule_confidence` surely (a
    # unit left out or beside the box would be missing from the weight) is likelier a tag that
    # does not answer, or answers too weakly to count (dead, detuned by foil, liquid or
    # orientation): the carton is held for a unit scan of that SKU instead of blocked, and a
    # scan of every unit (channel `tag_settled_by`) settles it. Something of the same weight
    # packed instead (a look-alike, another order's unit) is then scanned by its own code: an
    # extra line, BLOCK.
    tag_channels: frozenset[str] = frozenset({"rfid"})
    tag_settled_by: str = "scan"
    # A must-scan SKU whose unit scans (channel `tag_settled_by`) are off the order while no
    # other channel sees anything missing, extra or off (or holds the carton for a look) is
    # likelier a scan slip (a unit scanned twice, one put in unscanned) than a wrong carton: it
    # is held for a recount of that SKU (REVIEW, `scan_recount`: the session counts its scans
    # afresh) instead of blocked. A shortfall only when the scale vouches for every unit of the
    # SKU `overrule_confidence` surely: where the scans are the only channel that would notice
    # the unit missing, their count stands. Once a SKU is `recounted`, its count stands too.
    recount_scan_slips: bool = False
    recounted: frozenset[str] = frozenset()

    def decide(self, expected: Mapping[str, int], reports: Iterable[ChannelReport]) -> Verdict:
        kept = tuple(reports)
        considered = tuple(
            self._disregard_ignored(r) for r in kept if r.channel not in self.advisory
        )
        return replace(self._decide(expected, considered), reports=kept)

    def _decide(self, expected: Mapping[str, int], reports: tuple[ChannelReport, ...]) -> Verdict:
        by_channel = {r.channel: r for r in reports}
        required = list(self._unavailable(by_channel, self.required_channels))
        backup_missed: list[Reason] = []
        if self.backup and not self._scale_vouches(expected, reports):
            why = " and the scale alone does not vouch for every unit"
            backup_missed = list(self._unavailable(by_channel, self.backup, why))
        if required:
            return Verdict(Outcome.REVIEW, tuple(required + backup_missed), reports=reports)
        if backup_missed:
            return self._without_backup(expected, reports, backup_missed)
        return self._weigh(expected, reports)

    def _without_backup(
        self,
        expected: Mapping[str, int],
        reports: tuple[ChannelReport, ...],
        backup_missed: list[Reason],
    ) -> Verdict:
        """A backup needed but not OK: REVIEW, unless the other channels name lines surely
        missing or extra. A count (the backup) cannot set aside what the scale, a tag or a scan
        names, so the carton would be blocked for those lines with the backup up too, and the
        packer can put it right now instead of waiting for a reviewer. What a channel that is
        not OK says is missing is set aside (never published from a sensor that is down); an
        extra unit it proved (a code the camera read) still counts."""
        weighed = tuple(r if r.state is ChannelState.OK else _set_aside(r) for r in reports)
        verdict = self._weigh(expected, weighed)
        if verdict.outcome is Outcome.BLOCK and (verdict.missing or verdict.extra):
            reasons = _dedupe([*verdict.reasons, *backup_missed])
            return replace(verdict, reasons=tuple(reasons), reports=reports)
        # Held; what the other channels found goes with it, for the reviewer.
        reasons = _dedupe([*backup_missed, *verdict.reasons])
        return Verdict(Outcome.REVIEW, tuple(reasons), reports=reports)

    def _weigh(self, expected: Mapping[str, int], reports: tuple[ChannelReport, ...]) -> Verdict:
        """The verdict from reports whose required channels are all available. A channel that
        is not OK (an optional one, or a backup the scale excused) names nothing missing and no
        deficit or surplus; an extra unit it proved still counts."""
        heard = tuple(r if r.state is ChannelState.OK else _silenced(r) for r in reports)
        overruled = {r.channel for r in heard if self._count_overruled(r, heard, expected)}
        weighed = tuple(_set_aside(r) if r.channel in overruled else r for r in heard)
        unread = self._unread_tags(weighed)
        weighed = tuple(_without_missing(r, unread.get(r.channel, ())) for r in weighed)
        missing, extra, sure_reasons = self._confident_deltas(expected, weighed)
        discrepancies = [r for r in weighed if r.discrepancy is not Discrepancy.NONE]
        if missing or extra or discrepancies:
            recounts = self._recounts(expected, weighed)
            if recounts:  # no missing line: nothing is published as missing for a slip
                return Verdict(Outcome.REVIEW, tuple(recounts), reports=reports)
            reasons = sure_reasons + [reason for r in weighed for reason in r.reasons]
            return Verdict(
                Outcome.BLOCK, tuple(_dedupe(reasons)), tuple(missing), tuple(extra), reports
            )

        held = [reason for r in reports if r.state is ChannelState.OK for reason in r.review]
        held += self._scans_wanted(unread, weighed)
        reasons = held + [self._unverified(sku, reports) for sku in sorted(expected)]
        reasons = [reason for reason in reasons if reason is not None]
        if reasons:
            return Verdict(Outcome.REVIEW, tuple(_dedupe(reasons)), reports=reports)
        return Verdict(Outcome.PASS, (), reports=reports)

    def _disregard_ignored(self, report: ChannelReport) -> ChannelReport:
        ignored = {sku for sku, channels in self.sku_ignored.items() if report.channel in channels}
        if not ignored or not any(f.sku in ignored for f in report.findings):
            return report
        kept = tuple(f for f in report.findings if f.sku not in ignored)
        return replace(report, findings=kept)

    def _count_overruled(
        self, report: ChannelReport, reports: tuple[ChannelReport, ...], expected: Mapping[str, int]
    ) -> bool:
        """A count channel's deficit that other channels refute SKU by SKU, or its surplus that
        they refute for the whole carton (see the field)."""
        if report.channel not in self.overrulable_counts:
            return False
        others = tuple(r for r in reports if r.channel != report.channel)
        doubtful = {FindingStatus.MISSING, FindingStatus.UNCERTAIN}
        concerned = [f for f in report.findings if f.status in doubtful]
        if report.discrepancy is Discrepancy.SURPLUS:
            skus = {sku for sku, n in expected.items() if n > 0}
            if any(
                r.discrepancy is not Discrepancy.NONE
                or any(f.status is FindingStatus.EXTRA for f in r.findings)
                for r in others
            ):
                return False
            # A channel that may not vouch alone may set "one more" aside: the SKUs it alone
            # confirms still want a channel that may (`_unverified`) before the carton passes.
            vouching = self._vouching(reports, besides=self.tag_channels)
            needed = self.surplus_overrule_confidence
        elif report.discrepancy is Discrepancy.DEFICIT:
            skus = {f.sku for f in concerned} | {
                sku for e in report.explanations for sku, n in e.delta_units.items() if n < 0
            }
            vouching = self._vouching(reports, besides=frozenset())
            needed = self.overrule_confidence
        else:
            return False
        if not skus:
            return False
        claim = max((f.confidence for f in concerned), default=0.0)
        surest = max(claim, needed, self.min_confidence)
        return all(self._vouched(sku, vouching, surest) for sku in skus)

    def _unread_tags(self, reports: tuple[ChannelReport, ...]) -> dict[str, tuple[SkuFinding, ...]]:
        """Per tag channel, its missing findings that look like tags not answering (see
        `tag_channels`): every unit vouched for by a channel that may vouch alone (the scale),
        surer than the tag channel's own claim, and nothing extra seen by any channel."""
        unread: dict[str, tuple[SkuFinding, ...]] = {}
        if any(self._sees_more(r) for r in reports):
            return unread  # something else is in the carton: the unit may truly be missing
        for report in reports:
            if report.channel not in self.tag_channels or report.state is not ChannelState.OK:
                continue
            vouching = self._scale(reports)
            found = tuple(
                f
                for f in report.findings
                if f.status is FindingStatus.MISSING
                and self._vouched(f.sku, vouching, max(f.confidence, self.overrule_confidence))
            )
            if found:
                unread[report.channel] = found
        return unread

    def _vouching(
        self, reports: tuple[ChannelReport, ...], besides: frozenset[str]
    ) -> tuple[ChannelReport, ...]:
        """The reports whose confirmations may set another channel's finding aside: sensors,
        not those `besides`. Never the unit scans: a scan is the packer's word, and a unit
        scanned and then set down beside the box is the very mistake a count or a tag catches
        (measured: docs/accuracy.md). Never a count (it names no SKU)."""
        barred = besides | self.overrulable_counts | {self.tag_settled_by}
        return tuple(r for r in reports if r.channel not in barred)

    def _scale(self, reports: tuple[ChannelReport, ...]) -> tuple[ChannelReport, ...]:
        """The reports of channels that may vouch alone and are no tag reader: the weight."""
        return self._vouching(reports, besides=self.tag_channels | self.corroborate)

    def _sees_more(self, report: ChannelReport) -> bool:
        return report.discrepancy is not Discrepancy.NONE or any(
            f.status is FindingStatus.EXTRA and f.confidence >= self.min_confidence
            for f in report.findings
        )

    def _vouched(self, sku: str, reports: Iterable[ChannelReport], surest: float) -> bool:
        return any(
            (finding := r.finding_for(sku)) is not None
            and r.state is ChannelState.OK
            and finding.status is FindingStatus.CONFIRMED
            and finding.confidence >= max(surest, self.min_confidence)
            for r in reports
        )

    def _scans_wanted(
        self, unread: Mapping[str, tuple[SkuFinding, ...]], reports: tuple[ChannelReport, ...]
    ) -> list[Reason]:
        """A hold per SKU whose tags did not all answer and whose units are not all scanned."""
        scans = next((r for r in reports if r.channel == self.tag_settled_by), None)
        wanted = []
        for channel, findings in sorted(unread.items()):
            for f in findings:
                if self._vouched(f.sku, (scans,) if scans else (), self.min_confidence):
                    continue
                scanned = scans.finding_for(f.sku) if scans else None
                so_far = scanned.observed if scanned and scanned.observed is not None else 0
                weak = f" ({len(f.evidence)} more read too weakly to count)" if f.evidence else ""
                wanted.append(
                    Reason(
                        "tag_unread",
                        f"{f.sku}: {channel} read {f.observed} of {f.expected} tags{weak}, but "
                        f"the scale confirms all {f.expected}: a tag may not answer. Scan each "
                        f"unit of {f.sku} in the carton ({so_far} of {f.expected} scanned so "
                        "far), then close again.",
                        channel,
                        f.sku,
                    )
                )
        return wanted

    def _recounts(
        self, expected: Mapping[str, int], reports: tuple[ChannelReport, ...]
    ) -> list[Reason]:
        """A recount per must-scan SKU whose scans are off the order, when they are all that
        stands between the carton and a PASS (see `recount_scan_slips`); else none."""
        scans = next((r for r in reports if r.channel == self.tag_settled_by), None)
        if not self.recount_scan_slips or scans is None or scans.state is not ChannelState.OK:
            return []
        if any(self._objects(r) for r in reports if r is not scans):
            return []
        # Only the scale vouches for a unit the scans lack, and as surely as it refutes a tag:
        # a tag or a count also "sees" the unit lying beside the box (`_vouching`).
        scale = self._scale(reports)
        recounts = []
        for f in scans.findings:
            if not self._acts_on(f):
                continue
            slip = f.sku in expected and f.sku not in self.recounted
            short = f.status is FindingStatus.MISSING
            if not slip or (short and not self._vouched(f.sku, scale, self.overrule_confidence)):
                return []
            weighed = " and the scale weighs them all" if short else ""
            recounts.append(
                Reason(
                    SCAN_RECOUNT,
                    f"{f.sku}: {f.observed} of {f.expected} scanned{weighed}. Scan every unit "
                    f"of {f.sku} in the carton again ({f.expected} ordered), then close again.",
                    scans.channel,
                    f.sku,
                )
            )
        return recounts

    def _acts_on(self, finding: SkuFinding) -> bool:
        """A missing or extra finding sure enough to block on."""
        doubtful = finding.status not in (FindingStatus.MISSING, FindingStatus.EXTRA)
        return not doubtful and finding.confidence >= self.min_confidence

    def _objects(self, report: ChannelReport) -> bool:
        """The report sees something missing, extra or off, or wants a person to look."""
        return (
            report.discrepancy is not Discrepancy.NONE
            or any(self._acts_on(f) for f in report.findings)
            or (report.state is ChannelState.OK and bool(report.review))
        )

    def _unverified(self, sku: str, reports: tuple[ChannelReport, ...]) -> Reason | None:
        confirming = self._confirming(sku, reports)
        unconfirmed = sorted(self.sku_required.get(sku, frozenset()) - confirming)
        if unconfirmed:
            named = " and ".join(unconfirmed)
            return Reason(
                "sku_required_unconfirmed",
                f"{sku} must be confirmed by {named}, which did not confirm it.",
                unconfirmed[0],
                sku,
            )
        if not confirming:
            return Reason(
                "sku_unverified",
                f"No channel could confirm {sku}: its absence would not be detected.",
                sku=sku,
            )
        if confirming <= self.corroborate:
            named = " and ".join(sorted(confirming))
            return Reason(
                "sku_single_channel",
                f"Only {named} confirmed {sku}: this station needs a second channel to vouch "
                "for it.",
                sku=sku,
            )
        return None

    def _unavailable(
        self, by_channel: Mapping[str, ChannelReport], channels: frozenset[str], why: str = ""
    ) -> Iterable[Reason]:
        for channel in sorted(channels):
            report = by_channel.get(channel)
            if report is None:
                yield Reason(
                    "channel_missing", f"Required channel {channel} reported nothing{why}.", channel
                )
            elif report.state is not ChannelState.OK:
                detail = "; ".join(r.message for r in report.reasons) or report.state.value
                yield Reason(f"channel_{report.state.value}", f"{channel}: {detail}{why}", channel)

    def _scale_vouches(
        self, expected: Mapping[str, int], reports: tuple[ChannelReport, ...]
    ) -> bool:
        """The weight alone confirms every ordered SKU `overrule_confidence` surely (see
        `backup`): not a tag, a count, the insertion steps or the packer's scans."""
        skus = [sku for sku, n in expected.items() if n > 0]
        scale = tuple(r for r in reports if r.channel == SCALE)
        return bool(skus) and all(
            self._vouched(sku, scale, self.overrule_confidence) for sku in skus
        )

    def _confident_deltas(
        self, expected: Mapping[str, int], reports: tuple[ChannelReport, ...]
    ) -> tuple[list[LineDelta], list[LineDelta], list[Reason]]:
        short: dict[str, int] = {}
        over: dict[str, int] = {}
        evidence: dict[tuple[FindingStatus, str], set[str]] = {}
        reasons: list[Reason] = []
        for report in reports:
            # A report that explains itself (e.g. "412 g light: most likely 1 x mug") already
            # names the SKU; a second sentence per finding would only repeat it.
            speak = not report.reasons
            for f in report.findings:
                if f.confidence < self.min_confidence or f.observed is None:
                    continue
                if f.status is FindingStatus.MISSING:
                    short[f.sku] = max(short.get(f.sku, 0), f.expected - f.observed)
                    code, default = "sku_missing", f"{f.sku} missing"
                elif f.status is FindingStatus.EXTRA:
                    over[f.sku] = max(over.get(f.sku, 0), f.observed - f.expected)
                    code, default = "sku_extra", f"{f.sku} extra"
                else:
                    continue
                evidence.setdefault((f.status, f.sku), set()).update(f.evidence)
                if speak:
                    reasons.append(Reason(code, f.detail or default, report.channel, f.sku))

        def proof(status: FindingStatus, sku: str) -> tuple[str, ...]:
            return tuple(sorted(evidence.get((status, sku), ())))

        missing = [
            LineDelta(s, q, proof(FindingStatus.MISSING, s))
            for s, q in sorted(short.items())
            if q > 0 and s in expected
        ]
        extra = [
            LineDelta(s, q, proof(FindingStatus.EXTRA, s)) for s, q in sorted(over.items()) if q > 0
        ]
        return missing, extra, reasons

    def _confirming(self, sku: str, reports: tuple[ChannelReport, ...]) -> frozenset[str]:
        """Channels that confirm `sku` with enough confidence; a channel that is not OK (down,
        stale, unsure) confirms nothing, required or not."""
        channels = set()
        for report in reports:
            finding = report.finding_for(sku)
            if (
                report.state is ChannelState.OK
                and finding is not None
                and finding.status is FindingStatus.CONFIRMED
                and finding.confidence >= self.min_confidence
            ):
                channels.add(report.channel)
        return frozenset(channels)


def _set_aside(report: ChannelReport) -> ChannelReport:
    """The report with its (overruled) deficit or surplus and missing findings set aside; its
    confirmations and extras still count."""
    kept = tuple(f for f in report.findings if f.status is not FindingStatus.MISSING)
    return replace(
        report,
        findings=kept,
        discrepancy=Discrepancy.NONE,
        explanations=(),
        reasons=(),  # they explained the deficit; the verdict keeps the original report
    )


def _silenced(report: ChannelReport) -> ChannelReport:
    """A report that is not OK, set aside but for its extras; its reasons (why it is not OK)
    stay for the verdict."""
    return replace(_set_aside(report), reasons=report.reasons)


def _without_missing(report: ChannelReport, unread: tuple[SkuFinding, ...]) -> ChannelReport:
    """The report without the missing findings `unread` (tags that may not have answered)."""
    if not unread:
        return report
    kept = tuple(f for f in report.findings if f not in unread)
    return replace(report, findings=kept)


def _dedupe(reasons: Iterable[Reason]) -> list[Reason]:
    return list(dict.fromkeys(reasons))
