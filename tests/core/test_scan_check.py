"""The per-unit scan channel's report."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from station.scan_check import evaluate_scans
from station.verification import FindingStatus

EXPECTED = {"MUG": 1, "TEA": 2}


def statuses(report) -> dict[str, tuple[FindingStatus, float]]:
    return {f.sku: (f.status, f.confidence) for f in report.findings}


def test_nothing_to_report_without_scans_or_scan_duty() -> None:
    assert evaluate_scans(EXPECTED, {}, frozenset()) is None
    assert evaluate_scans(EXPECTED, {"TEA": 0}, frozenset({"OTHER"})) is None


def test_a_must_scan_sku_short_of_scans_is_missing_and_over_is_extra() -> None:
    report = evaluate_scans(EXPECTED, {"TEA": 1}, frozenset({"TEA", "MUG"}))
    assert statuses(report) == {
        "MUG": (FindingStatus.MISSING, 1.0),
        "TEA": (FindingStatus.MISSING, 1.0),
    }
    assert report.finding_for("TEA").observed == 1
    over = evaluate_scans(EXPECTED, {"TEA": 3, "MUG": 1}, frozenset({"TEA"}))
    assert statuses(over)["TEA"] == (FindingStatus.EXTRA, 1.0)
    assert statuses(over)["MUG"] == (FindingStatus.CONFIRMED, 1.0)


def test_optional_scans_confirm_but_their_absence_proves_nothing() -> None:
    report = evaluate_scans(EXPECTED, {"MUG": 1, "TEA": 1}, frozenset())
    assert statuses(report) == {
        "MUG": (FindingStatus.CONFIRMED, 1.0),
        "TEA": (FindingStatus.UNCERTAIN, 0.0),
    }
    assert statuses(evaluate_scans(EXPECTED, {"MUG": 1}, frozenset()))["TEA"][0] is (
        FindingStatus.NOT_APPLICABLE
    )
    # one more scan than units of an optional SKU: a double scan as likely as an extra unit
    assert statuses(evaluate_scans(EXPECTED, {"MUG": 2}, frozenset()))["MUG"] == (
        FindingStatus.EXTRA,
        0.5,
    )


def test_a_unit_of_another_sku_is_extra() -> None:
    report = evaluate_scans(EXPECTED, {"MUG-LARGE": 1}, frozenset())
    assert statuses(report)["MUG-LARGE"] == (FindingStatus.EXTRA, 1.0)


@given(
    st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(1, 5), min_size=1),
    st.dictionaries(st.sampled_from(["A", "B", "C", "X"]), st.integers(0, 8)),
    st.sets(st.sampled_from(["A", "B", "C"])),
)
def test_a_must_scan_sku_is_confirmed_exactly_when_its_count_matches(expected, scanned, must):
    report = evaluate_scans(expected, scanned, frozenset(must))
    for sku in must & expected.keys():
        assert report is not None
        finding = report.finding_for(sku)
        confirmed = finding.status is FindingStatus.CONFIRMED
        assert confirmed == (scanned.get(sku, 0) == expected[sku])
