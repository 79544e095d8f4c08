"""The label interlock's answer from a carton's evidence (station.interlock.label_permission):
pure, over the attempt, release and unsealed records the evidence store holds."""

from __future__ import annotations

from typing import Any

from station.interlock import label_permission


def attempt(outcome: str, seq: int, mode: str = "enforce") -> dict[str, Any]:
    return {"verdict": {"outcome": outcome}, "seq": seq, "attempt": 1, "mode": mode}


PASSED = [attempt("PASS", 10)]
LATER = 12  # chain positions: what orders records, whatever the wall clock said


def answer(**kwargs: Any) -> tuple[bool, str]:
    args: dict[str, Any] = {"releases": [], "held": False, "shadow_station": False, **kwargs}
    permission = label_permission(args.pop("attempts", PASSED), **args)
    return permission["allowed"], permission["reason"]


def test_a_pass_allows_its_label() -> None:
    assert answer() == (True, "passed")
    assert answer(outputs_pending=True) == (False, "outputs_pending")


def test_a_passed_carton_opened_again_at_the_station_is_no_yes_while_it_is_repacked() -> None:
    assert answer(held=True) == (False, "reopened")


def test_a_passed_carton_that_left_without_its_label_scan_wants_a_reviewer() -> None:
    left = [{"seq": LATER, "at": "2026-11-27T10:05:00Z", "why": "next_order"}]
    assert answer(unsealed=left) == (False, "left_unsealed")
    # A release after it, even with a wall clock stepped back an hour since, counts.
    released = [{"seq": LATER + 1, "at": "2026-11-27T09:06:00Z", "reviewer_badge": "R1"}]
    assert answer(unsealed=left, releases=released) == (True, "released")
    # Left unsealed before a later attempt passed: that attempt's PASS stands.
    again = [*PASSED, attempt("PASS", LATER + 5)]
    assert answer(attempts=again, unsealed=left) == (True, "passed")


def test_a_shadow_station_always_allows_and_says_so() -> None:
    permission = label_permission(PASSED, [], True, True, unsealed=[{"seq": LATER}])
    assert permission["allowed"] and permission["shadow"]


def test_a_released_carton_opened_again_is_reopened_too() -> None:
    blocked = [attempt("BLOCK", 10)]
    released = [{"seq": 11, "reviewer_badge": "R1"}]
    assert answer(attempts=blocked, releases=released) == (True, "released")
    assert answer(attempts=blocked, releases=released, held=True) == (False, "reopened")
    assert answer(attempts=blocked, held=True) == (False, "held")


def test_opened_again_then_replaced_or_aborted_is_no_longer_what_passed() -> None:
    """Sealed, opened again, items taken out, the packer moves on without closing it."""
    for kind in ("carton.replaced", "carton.aborted"):
        left = [{"seq": LATER, "kind": kind}]
        assert answer(unsealed=left) == (False, "left_unsealed")
        released = [{"seq": LATER - 1, "reviewer_badge": "R1"}]
        assert answer(attempts=[attempt("BLOCK", 10)], releases=released, unsealed=left) == (
            False,
            "left_unsealed",
        )
