"""Config sections for the local API, the packer's screen and the reviewers who may release cartons.

The API token and the reviewers' PINs never appear in the file in plain text: the token comes from
the environment or a file readable by the daemon's user only, and a PIN is stored as a salted
scrypt hash (`packstation hash-pin`).
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from station.api.pins import is_pin_hash

ReasonCode = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSection(_Strict):
    enabled: bool = Field(default=True, description="Serve the packer's screen and the API.")
    bind: str = Field(
        default="127.0.0.1",
        description="Address to listen on. The kiosk browser and the shipping software run on "
        "the station PC, so localhost is enough; bind wider only behind a firewall.",
    )
    port: int = Field(
        default=8420,
        ge=0,
        le=65_535,
        description="TCP port of the API and screen; 0 picks a free one.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for changing actions and evidence lookup; set it through "
        "PACKSTATION__API__TOKEN or token_file, never in this file. Without one those calls are "
        "refused.",
    )
    token_file: Path | None = Field(
        default=None, description="File holding the token (first line). Relative to the config."
    )
    screen_refresh_s: float = Field(
        default=0.25,
        gt=0.05,
        le=5,
        description="How often the screen's stream checks for changes (live weight included).",
    )

    @field_validator("bind")
    @classmethod
    def _an_address(cls, value: str) -> str:
        ip_address(value)  # raises ValueError with the offending text
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> ApiSection:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self

    def resolved_token(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            lines = self.token_file.read_text(encoding="utf-8").splitlines()
            return lines[0].strip() if lines and lines[0].strip() else None
        return None


class ReviewSection(_Strict):
    reason_codes: list[ReasonCode] = Field(
        default=["customer_agreed", "reissue_approved", "item_verified_by_hand", "scale_fault"],
        min_length=1,
        description="Why a reviewer may release a held carton; the screen offers these (each "
        "needs a `reason.<code>` string in the message catalogs).",
    )
    max_failed_pins: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Wrong badge/PIN entries allowed at this station within lockout_s; then "
        "overrides are refused until the window has passed.",
    )
    lockout_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Window for counting wrong PIN entries."
    )


class ReviewerEntry(_Strict):
    badge: str = Field(
        min_length=1, max_length=64, description="The reviewer's badge id (as the badge scans)."
    )
    name: str = Field(default="", max_length=100, description="Shown in the audit trail only.")
    pin_hash: str = Field(
        description="scrypt hash of the PIN from `packstation hash-pin`; never the PIN itself."
    )

    @field_validator("pin_hash")
    @classmethod
    def _a_hash(cls, value: str) -> str:
        if not is_pin_hash(value):
            raise ValueError("not a PIN hash: run `packstation hash-pin` and paste its output")
        return value
