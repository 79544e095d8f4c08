"""Typed scale readings: what every protocol parser produces, always in grams."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Exact conversion factors (the avoirdupois pound is defined as 453.59237 g).
GRAMS_PER_UNIT: dict[str, float] = {
    "mg": 0.001,
    "g": 1.0,
    "kg": 1000.0,
    "lb": 453.59237,
    "oz": 453.59237 / 16,
}


class ScaleStatus(StrEnum):
    OK = "ok"
    MOTION = "motion"
    OVERLOAD = "overload"
    UNDERLOAD = "underload"
    ZERO_ERROR = "zero_error"
    DEVICE_ERROR = "device_error"
    # The scale refused or did not understand a command (MT-SICS I/ES/ET/EL/EI, NCI "?").
    COMMAND_ERROR = "command_error"


@dataclass(frozen=True, slots=True)
class WeightReading:
    """One frame from the scale. `grams` is None for frames that carry only a status."""

    grams: float | None
    device_stable: bool
    status: ScaleStatus
    net: bool = False
    tare_grams: float | None = None
    raw: bytes = b""


def to_grams(value: float, unit: str) -> float | None:
    """`value` in `unit` (any case) as grams; None for a unit we do not know."""
    factor = GRAMS_PER_UNIT.get(unit.lower())
    return None if factor is None else value * factor
