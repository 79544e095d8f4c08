"""Weighing logic with explicit timestamps: no clocks, no threads."""

from __future__ import annotations

import pytest

from scale.config import scale_config_from
from scale.readings import ScaleStatus, WeightReading
from scale.weighing import (
    EmptyPlatterCheck,
    SoftwareTare,
    StabilityTracker,
    WeighState,
    scale_error_g,
)


def stable(grams: float) -> WeightReading:
    return WeightReading(grams, True, ScaleStatus.OK)


def moving(grams: float) -> WeightReading:
    return WeightReading(grams, False, ScaleStatus.MOTION)


def tracker() -> StabilityTracker:
    # band 5 g, still after 1.0 s, settled 0.5 s later, stale after 2 s.
    return StabilityTracker(
        band_g=5.0,
        stability_window_s=1.0,
        settle_window_s=0.5,
        capacity_g=15_000.0,
        stale_after_s=2.0,
    )


def feed(track: StabilityTracker, start: float, grams: list[float], step: float = 0.125) -> float:
    """Feed stable readings every `step` seconds from `start`; returns the last timestamp.

    The step is exact in binary floating point, so window edges in the tests are exact too.
    """
    ts = start
    for index, value in enumerate(grams):
        ts = start + index * step
        track.observe(stable(value), ts)
    return ts


def test_no_reading_yet_is_not_usable():
    assert tracker().assess(0.0).state is WeighState.NO_READING


def test_motion_then_stability_then_settled_with_the_averaged_weight():
    track = tracker()
    for index, grams in enumerate([0, 300, 800, 1190]):
        track.observe(moving(grams), index * 0.125)
    assert track.assess(0.375).state is WeighState.MOTION
    # Still from 0.5 s: noise within the band (+-2 g around 1200).
    last = feed(track, 0.5, [1198, 1202, 1200, 1201, 1199, 1200, 1200, 1202, 1198])
    assert last == 1.5
    assert track.assess(last).state is WeighState.SETTLING
    assert track.settled(last) is None
    last = feed(track, 1.625, [1201, 1199, 1200, 1200])
    assessment = track.assess(last)
    assert assessment.state is WeighState.SETTLED
    assert assessment.settled_grams == pytest.approx(1200.0, abs=0.5)
    assert assessment.still_for_s == 1.5


def test_hands_on_the_parcel_during_the_settle_window_restart_it():
    track = tracker()
    last = feed(track, 0.0, [1200] * 10)  # still for 1.125 s: settling
    assert track.assess(last).state is WeighState.SETTLING
    track.observe(stable(1210), 1.25)  # a hand presses: outside the 5 g band
    assert track.assess(1.25).state is WeighState.MOTION
    last = feed(track, 1.375, [1200] * 10)  # 1.125 s of stillness since the hand left
    assert track.assess(last).state is WeighState.SETTLING
    last = feed(track, 2.625, [1200] * 3)
    assert track.assess(last).state is WeighState.SETTLED


def test_device_motion_flag_alone_prevents_stability():
    track = tracker()
    for index in range(30):
        track.observe(moving(1200), index * 0.125)
    assert track.assess(3.625).state is WeighState.MOTION


def test_slow_drift_beyond_the_band_never_settles():
    track = tracker()
    last = feed(track, 0.0, [1200 + index for index in range(40)])  # 8 g per second
    assert track.assess(last).state is WeighState.MOTION


def test_reading_older_than_stale_after_is_not_usable():
    track = tracker()
    last = feed(track, 0.0, [1200] * 20)
    assert track.assess(last + 1.9).state is WeighState.SETTLED
    stale = track.assess(last + 2.1)
    assert (stale.state, stale.settled_grams) == (WeighState.STALE, None)


def test_gap_in_readings_restarts_stability():
    track = tracker()
    feed(track, 0.0, [1200] * 5)
    last = feed(track, 3.0, [1200] * 5)  # 2.6 s without readings in between
    assert track.assess(last).state is WeighState.MOTION


@pytest.mark.parametrize(
    ("reading", "state"),
    [
        (WeightReading(None, False, ScaleStatus.OVERLOAD), WeighState.OVERLOAD),
        (stable(15_000.5), WeighState.OVERLOAD),  # software capacity check
        (WeightReading(None, False, ScaleStatus.UNDERLOAD), WeighState.UNDERLOAD),
        (stable(-6.0), WeighState.UNDERLOAD),
        (WeightReading(1200.0, True, ScaleStatus.ZERO_ERROR), WeighState.DEVICE_FAULT),
        (WeightReading(None, True, ScaleStatus.DEVICE_ERROR), WeighState.DEVICE_FAULT),
        (WeightReading(None, True, ScaleStatus.OK), WeighState.MOTION),  # status only
    ],
)
def test_out_of_range_and_faults_never_settle(reading, state):
    track = tracker()
    feed(track, 0.0, [1200] * 20)
    track.observe(reading, 2.5)
    assessment = track.assess(2.5)
    assert (assessment.state, assessment.settled_grams) == (state, None)


def test_command_error_does_not_disturb_a_settled_weight():
    track = tracker()
    last = feed(track, 0.0, [1200] * 20)
    track.observe(WeightReading(None, False, ScaleStatus.COMMAND_ERROR), last + 0.05)
    assert track.settled(last + 0.05) == pytest.approx(1200.0)


def test_reset_forgets_the_previous_parcel():
    track = tracker()
    last = feed(track, 0.0, [1200] * 20)
    track.reset()
    assert track.assess(last).state is WeighState.NO_READING


def test_from_config_uses_band_in_divisions():
    config = scale_config_from(
        {"protocol": "mtsics", "port": "/dev/null", "division_g": 2, "motion_band_divisions": 1.5}
    )
    assert StabilityTracker.from_config(config).band_g == 3.0


def test_software_tare_from_box_type_or_captured():
    assert SoftwareTare.from_box_type(250.0).net_g(1450.0) == 1200.0
    captured = SoftwareTare.captured(248.0)
    assert (captured.source, captured.net_g(1450.0)) == ("captured", 1202.0)
    with pytest.raises(ValueError, match="negative"):
        SoftwareTare.from_box_type(-1.0)


def test_empty_platter_drift_is_reported_with_the_grams():
    check = EmptyPlatterCheck(zero_band_g=10.0)
    assert check.check(9.5) is None
    assert check.check(-10.0) is None
    drift = check.check(-23.0)
    assert drift is not None
    assert drift.grams == -23.0
    assert "-23.0 g" in drift.detail


@pytest.mark.parametrize(
    ("load_g", "expected"),
    [
        (0.0, 5.0),
        (2500.0, 5.0),  # 500 e
        (2505.0, 7.5),
        (10_000.0, 7.5),  # 2000 e
        (10_005.0, 10.0),
        (50_000.0, 10.0),  # 10000 e
        (-3000.0, 7.5),  # magnitude counts
    ],
)
def test_oiml_maximum_permissible_error(load_g, expected):
    assert scale_error_g(load_g, division_g=5.0) == expected


def test_latest_at_is_when_the_newest_usable_reading_was_taken():
    track = tracker()
    assert track.latest_at is None
    last = feed(track, 0.0, [100.0] * 4)
    assert track.latest_at == last
    track.observe(WeightReading(None, False, ScaleStatus.COMMAND_ERROR), last + 1.0)
    assert track.latest_at == last  # a refused command is no sign the weight was seen
