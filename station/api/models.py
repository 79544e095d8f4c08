"""Request bodies of the Station API: validated on arrival; their schemas go into the OpenAPI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _HeldCarton(_Body):
    """What a release may name, so it never releases another carton than the one the reviewer
    looked at (a screen a moment stale, a tool's old list): all optional."""

    order_id: str | None = Field(
        default=None, max_length=64, description="The held carton's order."
    )
    carton_id: str | None = Field(default=None, max_length=64, description="Its carton.")
    attempt: int | None = Field(default=None, ge=1, description="The attempt the reviewer saw.")


class StartCarton(_Body):
    """Open a carton for the logged-in packer, as scanning its order label would."""

    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")
    carton_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._\-]+$")


class CloseCarton(_Body):
    """Close the open carton, as scanning the close code would."""


class TokenOverride(_HeldCarton):
    """Release the held carton for a reviewer, from a supervisor tool holding the token: the
    reviewer still gives their badge and PIN."""

    reviewer_badge: str = Field(min_length=1, max_length=64, description="Who approves.")
    pin: str = Field(min_length=4, max_length=12, pattern=r"^[0-9]+$", description="Their PIN.")
    reason_code: str = Field(min_length=1, max_length=40, description="One of review.reason_codes.")


class ScreenOverride(_HeldCarton):
    """Release the held carton from the packer's screen with a reviewer's badge and PIN."""

    reviewer_badge: str = Field(min_length=1, max_length=64, description="The reviewer's badge.")
    pin: str = Field(min_length=4, max_length=12, pattern=r"^[0-9]+$", description="Their PIN.")
    reason_code: str = Field(min_length=1, max_length=40, description="One of review.reason_codes.")


class ScreenDegraded(_Body):
    """A reviewer authorises (or ends) a degraded mode: unit scans in place of a channel whose
    device is down, for a limited time."""

    reviewer_badge: str = Field(min_length=1, max_length=64, description="The reviewer's badge.")
    pin: str = Field(min_length=4, max_length=12, pattern=r"^[0-9]+$", description="Their PIN.")
    fallback: Literal["scan_for_weight", "scan_for_rfid", "scan_for_vision"] | None = Field(
        description="The fallback to authorise; null ends the one in force."
    )
    reason_code: str = Field(min_length=1, max_length=40, description="One of review.reason_codes.")
    minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="How long; at most policy.degraded_max_minutes."
    )
