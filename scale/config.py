"""Configuration of one scale: a pydantic model per protocol, picked by the `protocol` key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

# pyserial URL schemes that make sense for a scale (anything else is almost surely a typo).
_URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "hwgrep", "alt")
Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


class _ScaleConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        "scale", min_length=1, description="Name of this scale in logs and health events."
    )
    port: str = Field(
        description="pyserial port or URL: /dev/ttyUSB0, /dev/serial/by-id/..., /dev/pts/N, "
        "socket://host:port (serial-to-Ethernet converter), rfc2217://host:port."
    )
    baudrate: Baudrate = Field(9600, description="Serial speed; must match the scale's setting.")
    bytesize: Literal[7, 8] = Field(8, description="Data bits (NCI/ECR scales often use 7).")
    parity: Literal["N", "E", "O"] = Field("N", description="Parity: N none, E even, O odd.")
    stopbits: Literal[1, 2] = Field(1, description="Stop bits.")
    xonxoff: bool = Field(
        False, description="XON/XOFF software handshake (some MT-SICS balances default to it)."
    )
    read_timeout_s: float = Field(
        1.0,
        gt=0,
        le=30,
        description="How long to wait for a reply to a poll before counting it as missed.",
    )
    poll_interval_s: float = Field(
        0.1, gt=0, le=10, description="Seconds between polls (10 Hz is safe on MT-SICS and NCI)."
    )
    capacity_g: float = Field(15_000.0, gt=0, description="Maximum capacity (Max) in grams.")
    division_g: float = Field(5.0, gt=0, description="Display / verification division e in grams.")
    motion_band_divisions: float = Field(
        1.0,
        gt=0,
        description="No-motion band in divisions: readings within it over the stability window "
        "count as still.",
    )
    stability_window_s: float = Field(
        1.0, gt=0, description="Window over which the weight must stay within the motion band."
    )
    settle_window_s: float = Field(
        0.5,
        ge=0,
        description="Hands-off time after the weight is stable before it counts as settled; "
        "any movement beyond the band restarts it.",
    )
    zero_band_g: float = Field(
        10.0, ge=0, description="Between parcels the empty platter must read within +- this."
    )
    stale_after_s: float = Field(
        3.0,
        gt=0,
        description="A reading older than this is stale; no valid frame for this long marks the "
        "scale down and reopens the port. MT-SICS replies can take up to 2 s.",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First delay before reopening the port.")
    reconnect_max_s: float = Field(
        30.0, gt=0, description="Longest delay between attempts (backoff doubles up to this)."
    )

    @field_validator("port")
    @classmethod
    def _known_port_form(cls, port: str) -> str:
        port = port.strip()
        if "://" not in port:
            if not port:
                raise ValueError("port must not be empty")
            return port
        scheme, _, rest = port.partition("://")
        if scheme not in _URL_SCHEMES:
            raise ValueError(f"unknown pyserial URL scheme {scheme!r}; use one of {_URL_SCHEMES}")
        if scheme in ("socket", "rfc2217") and not rest.split("?")[0].rpartition(":")[2].isdigit():
            raise ValueError(f"{scheme}:// needs host:port, e.g. {scheme}://10.0.0.5:4001")
        return port

    @model_validator(mode="after")
    def _consistent(self) -> _ScaleConfigBase:
        if self.division_g >= self.capacity_g:
            raise ValueError("division_g must be smaller than capacity_g")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.stale_after_s <= self.poll_interval_s:
            raise ValueError("stale_after_s must be longer than poll_interval_s")
        return self

    @property
    def motion_band_g(self) -> float:
        return self.motion_band_divisions * self.division_g

    @property
    def serial_summary(self) -> str:
        """Serial settings the way manuals write them, e.g. '9600 8N1'."""
        handshake = " XON/XOFF" if self.xonxoff else ""
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}{handshake}"


class MtSicsScaleConfig(_ScaleConfigBase):
    protocol: Literal["mtsics"] = Field(
        description="Mettler Toledo MT-SICS (balances and bench scales)."
    )
    mtsics_mode: Literal["poll", "stream"] = Field(
        "poll",
        description="poll: send SI every poll_interval_s; stream: send SIR once and read the "
        "stream the balance sends (4-10 readings per second).",
    )


class NciScaleConfig(_ScaleConfigBase):
    protocol: Literal["nci"] = Field(
        description="NCI General Weigh Protocol, standard or ECR (PS60, Avery Berkel, Brecknell)."
    )
    bytesize: Literal[7, 8] = Field(7, description="Data bits; NCI/ECR scales usually run 7E1.")
    parity: Literal["N", "E", "O"] = Field("E", description="Parity; NCI/ECR scales usually E.")


class ToledoScaleConfig(_ScaleConfigBase):
    protocol: Literal["toledo"] = Field(
        description="Toledo continuous output: the terminal streams frames without being asked."
    )


ScaleConfig = Annotated[
    MtSicsScaleConfig | NciScaleConfig | ToledoScaleConfig, Field(discriminator="protocol")
]
ScaleConfigModel = MtSicsScaleConfig | NciScaleConfig | ToledoScaleConfig
_ADAPTER: TypeAdapter[ScaleConfigModel] = TypeAdapter(ScaleConfig)


def scale_config_from(data: dict[str, Any]) -> ScaleConfigModel:
    """Validate a plain mapping (from TOML or the command line) into the protocol's model."""
    return _ADAPTER.validate_python(data)
