"""The RFID channel's report builder (pure), its config, the shipped-EPC ledger, and the policy
rules RFID brings: never PASS on RFID alone when a second channel is demanded; review reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rfid.config import AntennaWindow, ReadWindowConfig
from rfid.epc import normalise_gtin
from rfid.identity import EpcSkuResolver
from rfid.ledger import EpcLedger
from rfid.reads import TagRead
from rfid.window import filter_window
from simulators.rfid_sim import sgtin_for_gtin
from simulators.rig import EXAMPLE_CATALOG
from station.catalog_file import load_catalog
from station.rfid_check import ReaderProblem, RfidCheckConfig, rfid_report
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Outcome,
    Reason,
    SkuFinding,
    VerificationPolicy,
)

CATALOG = load_catalog(EXAMPLE_CATALOG)
RESOLVER = EpcSkuResolver.from_catalog(CATALOG)
WINDOW = ReadWindowConfig(
    antennas=(AntennaWindow(antenna=1, rssi_floor_dbm=-55),), min_seen_count=3
)
EAR = "EAR-SILVER"
PHONES = "HEADPHONES-X1"


def tag(sku: str, serial: int) -> bytes:
    gtin = CATALOG.items[sku].barcodes[0].code
    return sgtin_for_gtin(gtin, serial)


def read(epc: bytes, rssi: float = -45, antenna: int = 1, count: int = 10) -> TagRead:
    return TagRead(epc, antenna, rssi, 10.0, 10.5, count, "platter")


def report(expected, reads, deny=None, problems=()):
    result = filter_window(reads, WINDOW, RESOLVER, deny=deny)
    return rfid_report(
        expected,
        CATALOG,
        result,
        problems=problems,
        sku_of=lambda epc: RESOLVER.resolve(epc).sku,
    )


def test_the_rigs_tags_decode_to_their_catalog_skus():
    for sku in (EAR, PHONES):
        identity = RESOLVER.resolve(tag(sku, 7))
        assert identity.sku == sku
        assert identity.gtin14 == normalise_gtin(CATALOG.items[sku].barcodes[0].code)


def test_tagged_units_are_counted_untagged_ones_are_not_applicable():
    r = report(
        {EAR: 2, PHONES: 1, "MUG-BLUE": 1},
        [read(tag(EAR, 1)), read(tag(EAR, 2)), read(tag(PHONES, 1))],
    )
    assert r.state is ChannelState.OK and r.review == ()
    assert r.finding_for(EAR).status is FindingStatus.CONFIRMED
    assert r.finding_for(EAR).observed == 2
    assert r.finding_for(PHONES).status is FindingStatus.CONFIRMED
    assert r.finding_for("MUG-BLUE").status is FindingStatus.NOT_APPLICABLE
    assert r.measurements["tags_accepted"] == 3


def test_a_unit_beside_the_box_is_missing_with_its_epc_as_evidence():
    beside = tag(EAR, 9)
    r = report({EAR: 1, PHONES: 1}, [read(tag(PHONES, 1)), read(beside, rssi=-70)])
    missing = r.finding_for(EAR)
    assert (missing.status, missing.expected, missing.observed) == (FindingStatus.MISSING, 1, 0)
    assert missing.confidence >= 0.9
    assert beside.hex().upper() in missing.detail and "not in it" in missing.detail
    verdict = VerificationPolicy(required_channels=frozenset({"rfid"})).decide(
        {EAR: 1, PHONES: 1}, [r]
    )
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.missing] == [(EAR, 1)]
    assert beside.hex().upper() in verdict.reasons[0].message
    # ... and structurally, as the line's evidence (it reaches the event's missing line).
    assert missing.evidence == (beside.hex().upper(),)
    assert verdict.missing[0].evidence == (beside.hex().upper(),)


def test_more_units_than_expected_and_foreign_skus_are_extra():
    r = report({EAR: 1}, [read(tag(EAR, 1)), read(tag(EAR, 2)), read(tag(PHONES, 1))])
    assert r.finding_for(EAR).status is FindingStatus.EXTRA
    foreign = r.finding_for(PHONES)
    assert (foreign.status, foreign.expected, foreign.observed) == (FindingStatus.EXTRA, 0, 1)
    verdict = VerificationPolicy(required_channels=frozenset()).decide({EAR: 1}, [r])
    assert verdict.outcome is Outcome.BLOCK
    assert {(d.sku, d.quantity) for d in verdict.extra} == {(EAR, 1), (PHONES, 1)}
    evidence = {d.sku: d.evidence for d in verdict.extra}
    assert evidence[PHONES] == (tag(PHONES, 1).hex().upper(),)
    assert set(evidence[EAR]) == {tag(EAR, 1).hex().upper(), tag(EAR, 2).hex().upper()}


def test_weak_strays_and_other_antennas_make_no_extra():
    stray = tag(PHONES, 99)
    reads = [read(tag(EAR, 1)), read(stray, rssi=-72), read(tag(PHONES, 98), antenna=2)]
    r = report({EAR: 1}, reads)
    assert r.finding_for(PHONES) is None and r.review == ()
    assert r.finding_for(EAR).status is FindingStatus.CONFIRMED


def test_unknown_and_shipped_tags_send_the_carton_to_review_not_block():
    private = bytes.fromhex("E28068940000400A9D22A9EB")
    shipped = tag(EAR, 1)
    r = report({EAR: 1}, [read(shipped), read(private)], deny={shipped.hex().upper(): "shipped"})
    assert r.finding_for(EAR).status is FindingStatus.UNCERTAIN
    assert {reason.code for reason in r.review} == {"rfid_unknown_tag", "rfid_tag_shipped"}
    verdict = VerificationPolicy(required_channels=frozenset()).decide({EAR: 1}, [r])
    assert verdict.outcome is Outcome.REVIEW
    assert {reason.code for reason in verdict.reasons} >= {"rfid_unknown_tag", "rfid_tag_shipped"}


def test_a_reader_problem_reports_no_findings_and_required_rfid_reviews():
    problem = ReaderProblem("platter", ChannelState.DOWN, "RFID reader platter is down: refused")
    r = report({EAR: 1}, [read(tag(EAR, 1))], problems=[problem])
    assert r.state is ChannelState.DOWN and r.findings == ()
    assert r.reasons[0].code == "rfid_down"
    required = VerificationPolicy(required_channels=frozenset({"rfid"}))
    assert required.decide({EAR: 1}, [r]).outcome is Outcome.REVIEW


def test_rfid_alone_needs_a_second_channel_when_configured():
    r = report({EAR: 1}, [read(tag(EAR, 1))])
    assert VerificationPolicy(required_channels=frozenset()).decide({EAR: 1}, [r]).passed
    strict = VerificationPolicy(required_channels=frozenset(), corroborate=frozenset({"rfid"}))
    verdict = strict.decide({EAR: 1}, [r])
    assert verdict.outcome is Outcome.REVIEW
    assert verdict.reasons[0].code == "sku_single_channel"
    weight = ChannelReport(
        "weight", ChannelState.OK, (SkuFinding(EAR, FindingStatus.CONFIRMED, 1, 1, 0.99),)
    )
    assert strict.decide({EAR: 1}, [r, weight]).passed


# -- policy properties ----------------------------------------------------------------------------

SKUS = ["A", "B", "C"]
CHANNELS = ["weight", "rfid", "vision"]
expectations = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 4), min_size=1)


@st.composite
def any_report(draw, expected: dict[str, int], channel: str):
    findings = tuple(
        SkuFinding(
            sku,
            draw(st.sampled_from(FindingStatus)),
            expected[sku],
            draw(st.one_of(st.none(), st.integers(0, 6))),
            draw(st.floats(0, 1)),
        )
        for sku in draw(st.lists(st.sampled_from(sorted(expected)), max_size=4))
    )
    review = tuple(Reason("rfid_unknown_tag", "x", channel) for _ in range(draw(st.integers(0, 1))))
    return ChannelReport(channel, draw(st.sampled_from(ChannelState)), findings, review=review)


@given(st.data(), expectations, st.sets(st.sampled_from(CHANNELS)), st.booleans())
def test_never_pass_on_rfid_alone_when_the_rule_is_on(data, expected, required, rule) -> None:
    policy = VerificationPolicy(
        required_channels=frozenset(required),
        corroborate=frozenset({"rfid"}) if rule else frozenset(),
    )
    reports = [data.draw(any_report(expected, c)) for c in CHANNELS]
    verdict = policy.decide(expected, reports)
    if not verdict.passed:
        return
    for sku in expected:
        confirming = {
            r.channel
            for r in reports
            if r.state is ChannelState.OK
            and (f := r.finding_for(sku)) is not None
            and f.status is FindingStatus.CONFIRMED
            and f.confidence >= policy.min_confidence
        }
        assert confirming, "a PASS needs every SKU confirmed by a channel that is OK"
        if rule:
            assert confirming - {"rfid"}, "RFID alone never passes when the rule is on"
    assert all(r.state is ChannelState.OK for r in reports if r.channel in required)
    assert not [reason for r in reports if r.state is ChannelState.OK for reason in r.review]


@given(st.data(), expectations, st.sampled_from([s for s in ChannelState if s != "ok"]))
def test_a_required_rfid_channel_that_is_down_never_passes(data, expected, state) -> None:
    policy = VerificationPolicy(required_channels=frozenset({"weight", "rfid"}))
    reports = [data.draw(any_report(expected, c)) for c in CHANNELS]
    reports[1] = ChannelReport("rfid", state, reports[1].findings)
    assert policy.decide(expected, reports).outcome is Outcome.REVIEW


# -- config and ledger ----------------------------------------------------------------------


def test_config_rejects_window_antennas_no_reader_inventories_and_reads_the_csv(tmp_path: Path):
    reader = {"protocol": "llrp", "host": "10.0.0.20", "name": "platter", "antennas": [1]}
    with pytest.raises(ValidationError, match="window antennas"):
        RfidCheckConfig.model_validate(
            {"readers": [reader], "window": {"antennas": [{"antenna": 2}]}}
        )
    with pytest.raises(ValidationError):
        RfidCheckConfig.model_validate({"readers": [reader], "window_s": 1, "unknown_key": 1})
    (tmp_path / "epcs.csv").write_text(
        "match,epc,sku\nexact,e28011,EAR-SILVER\nprefix,E2,MUG-BLUE\n"
    )
    config = RfidCheckConfig.model_validate(
        {"readers": [reader], "epc_table_csv": "epcs.csv", "epc_table": {"exact": {"AB": "X"}}}
    ).resolve_paths(tmp_path)
    table = config.site_table()
    assert table.exact == {"AB": "X", "E28011": "EAR-SILVER"}
    assert table.prefixes == {"E2": "MUG-BLUE"}


def test_the_ledger_denies_shipped_epcs_forgets_returns_and_expires(tmp_path: Path):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ledger = EpcLedger(tmp_path / "ledger.sqlite3", timedelta(days=30), now)
    ledger.shipped(["aa01", "AA02"], "ORD-1", "C1", now)
    assert ledger.denials(["AA01", "AA03"]) == {"AA01": "shipped"}
    ledger.forget(["AA01"])
    assert ledger.denials(["AA01", "AA02"]) == {"AA02": "shipped"}
    ledger.close()
    reopened = EpcLedger(tmp_path / "ledger.sqlite3", timedelta(days=30), now + timedelta(days=31))
    assert len(reopened) == 0
    reopened.close()


def example_config_with_rfid(tmp_path: Path, second_channel: bool = False):
    """The example station config with its commented [rfid] section switched on."""
    import re

    from station.config import StationConfig
    from station.config_loader import load_config

    example = Path(EXAMPLE_CATALOG).parent / "station.example.toml"
    text = example.read_text()
    block = text[text.index("# [rfid]") :]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    if second_channel:
        uncommented = uncommented.replace(
            "require_second_channel = false", "require_second_channel = true"
        )
    (tmp_path / "epc-table.csv").write_text("match,epc,sku\n")
    (tmp_path / "station.toml").write_text(text + "\n" + uncommented)
    return load_config(StationConfig, tmp_path / "station.toml", {})


def test_the_example_configs_commented_rfid_section_is_valid(tmp_path: Path):
    config = example_config_with_rfid(tmp_path)
    assert config.rfid is not None and config.rfid.readers[0].name == "platter"
    assert config.rfid.window.min_seen_count == 5


def test_require_second_channel_makes_the_station_policy_corroborate_rfid(tmp_path: Path):
    from station.config import station_policy

    alone = station_policy(example_config_with_rfid(tmp_path))
    assert "rfid" in alone.channels and "rfid" not in alone.corroborate
    strict = station_policy(example_config_with_rfid(tmp_path, second_channel=True))
    assert "rfid" in strict.corroborate
