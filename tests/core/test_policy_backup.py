"""Backup channels: required unless the scale vouches for the carton on its own."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.carton_policy import StationPolicy
from station.domain import Catalog, CatalogItem
from station.verification import (
    OVERRULE_CONFIDENCE,
    ChannelReport,
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)
from tests.core.test_carton_policy import (
    LOOKALIKES,
    ORDER,
    ORDER_LOOKALIKE_POWER,
    ORDER_POWER,
    degraded,
)
from tests.core.test_policy_properties import CHANNELS, expectations, reports

BACKUP = VerificationPolicy(
    required_channels=frozenset({"weight"}), backup=frozenset({"vision", "rfid"})
)
NOT_OK = [s for s in ChannelState if s is not ChannelState.OK]
# Confidences on both sides of the bar, and anywhere.
VOUCHING = st.sampled_from([0.95, 0.99, 0.9989, OVERRULE_CONFIDENCE, 0.9995, 1.0]) | st.floats(0, 1)


def scale(expected: dict[str, int], confidence: dict[str, float]) -> ChannelReport:
    return ChannelReport(
        "weight",
        ChannelState.OK,
        tuple(
            SkuFinding(sku, FindingStatus.CONFIRMED, n, n, confidence[sku])
            for sku, n in sorted(expected.items())
        ),
    )


@given(st.data(), expectations, st.sampled_from(NOT_OK), st.sampled_from(["vision", "rfid"]))
def test_a_backup_that_is_not_ok_passes_only_when_the_scale_vouches_for_every_sku(
    data, expected, state, backup
) -> None:
    confidence = {sku: data.draw(VOUCHING) for sku in expected}
    others = [data.draw(reports(expected, c)) for c in CHANNELS[1:] if c != backup]
    silent = data.draw(st.one_of(st.none(), reports(expected, backup, state)))
    decided = [scale(expected, confidence), *others, *([silent] if silent else [])]
    verdict = BACKUP.decide(expected, decided)
    if min(confidence.values()) < OVERRULE_CONFIDENCE:
        assert verdict.outcome is Outcome.REVIEW
        assert any(
            r.channel == backup and "the scale alone does not vouch" in r.message
            for r in verdict.reasons
        )
    else:
        # Excused: it decides as a channel the station merely has (not required) would.
        optional = VerificationPolicy(required_channels=frozenset({"weight"}))
        assert verdict.outcome is optional.decide(expected, decided).outcome


@given(st.data(), expectations)
def test_a_backup_that_is_ok_decides_as_a_required_channel(data, expected) -> None:
    decided = [data.draw(reports(expected, c, ChannelState.OK)) for c in CHANNELS]
    required = VerificationPolicy(required_channels=frozenset(CHANNELS))
    assert BACKUP.decide(expected, decided) == required.decide(expected, decided)


@given(st.data(), expectations, st.sampled_from(NOT_OK))
def test_the_scale_that_is_not_ok_excuses_no_backup(data, expected, state) -> None:
    """However sure a weight report that is down, stale or unsure claims to be."""
    weight = replace(scale(expected, dict.fromkeys(expected, 1.0)), state=state)
    vision = data.draw(reports(expected, "vision", data.draw(st.sampled_from(NOT_OK))))
    policy = VerificationPolicy(required_channels=frozenset(), backup=frozenset({"vision"}))
    assert policy.decide(expected, [weight, vision]).outcome is Outcome.REVIEW


def test_tags_and_the_insertion_steps_vouch_for_no_backup() -> None:
    """Only the weight stands in: a tag answers from beside the box, the steps are corroborating."""
    expected = {"MUG": 1}
    sure = (SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 1.0),)
    vision = ChannelReport("vision", ChannelState.UNSURE)
    unsure_weight = ChannelReport(
        "weight", ChannelState.OK, (SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 0.95),)
    )
    policy = replace(BACKUP, corroborate=frozenset({"insertion"}))
    for channel in ("rfid", "insertion"):
        vouching = ChannelReport(channel, ChannelState.OK, sure)
        verdict = policy.decide(expected, [unsure_weight, vouching, vision])
        assert verdict.outcome is Outcome.REVIEW, channel
    assert policy.decide(expected, [scale(expected, {"MUG": 1.0}), vision]).passed


def test_an_excused_backup_still_blocks_on_what_it_saw() -> None:
    """An unsure camera that read another SKU's code: the extra line stands."""
    expected = {"MUG": 1}
    extra = SkuFinding("SOCKS", FindingStatus.EXTRA, 0, 1, 0.99)
    vision = ChannelReport("vision", ChannelState.UNSURE, (extra,), Discrepancy.NONE)
    verdict = BACKUP.decide(expected, [scale(expected, {"MUG": 1.0}), vision])
    assert verdict.outcome is Outcome.BLOCK and verdict.extra[0].sku == "SOCKS"


def test_a_channel_cannot_be_required_and_backup() -> None:
    with pytest.raises(ValueError, match="backup"):
        VerificationPolicy(required_channels=frozenset({"vision"}), backup=frozenset({"vision"}))


# The plan: which backups this carton needs as required channels.
CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=350),
        CatalogItem(sku="CARD", name="Gift card", unit_weight_g=4),
    ]
)
STATION = StationPolicy(
    channels=frozenset({"weight", "rfid", "vision"}),
    required_channels=frozenset({"weight"}),
    backup=frozenset({"rfid", "vision"}),
)


def planned(plan) -> tuple[frozenset[str], frozenset[str]]:
    return plan.policy.required_channels, plan.policy.backup


def test_a_carton_the_scale_covers_leaves_its_backups_to_the_close() -> None:
    plan = STATION.plan({"MUG": 2}, CATALOG, {"MUG": 1.0})
    assert planned(plan) == ({"weight"}, {"rfid", "vision"})


def test_a_sku_the_scale_may_miss_makes_the_backups_required() -> None:
    plan = STATION.plan({"MUG": 1, "CARD": 1}, CATALOG, {"MUG": 1.0, "CARD": 0.2})
    assert planned(plan) == ({"weight", "rfid", "vision"}, frozenset())
    bare = STATION.plan({"MUG": 1}, CATALOG, {"MUG": 0.998})
    assert planned(bare) == ({"weight", "rfid", "vision"}, frozenset())


def test_with_the_scale_replaced_every_backup_is_required() -> None:
    from station.carton_policy import Fallback

    plan = STATION.plan({"MUG": 1}, CATALOG, {"MUG": 1.0}, degraded(Fallback.SCAN_FOR_WEIGHT))
    assert planned(plan) == ({"rfid", "vision"}, frozenset())


def test_a_backup_that_alone_tells_look_alikes_apart_is_required() -> None:
    """The scale's confirmation says nothing of a cable of the same weight in another colour:
    RFID, which reads the colour in the EPC, is needed; the camera, which counts, is not."""
    plan = STATION.plan(ORDER, LOOKALIKES, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert planned(plan) == ({"weight", "rfid"}, {"vision"})
