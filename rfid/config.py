"""Configuration of one RFID reader (a pydantic model per protocol, picked by `protocol`) and of
the decisive read window."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

_URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "hwgrep", "alt")
Baudrate = Literal[9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600]
AntennaId = Annotated[int, Field(ge=1, le=64)]
Gen2Session = Literal[0, 1, 2, 3]
ImpinjSearchMode = Literal[
    "single_target",
    "dual_target",
    "single_target_with_suppression",
    "single_target_b_to_a",
    "dual_target_b_to_a_select",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ReaderBase(_Strict):
    name: str = Field("rfid", min_length=1, description="Name of this reader in logs and reads.")
    antennas: tuple[AntennaId, ...] = Field(
        (1,),
        min_length=1,
        description="Antenna ports to inventory (1-based). LLRP and ThingMagic put them in the "
        "inventory; serial readers that report the antenna are checked against them.",
    )
    reply_timeout_s: float = Field(
        1.0, gt=0, le=30, description="How long to wait for a reply before counting it as missed."
    )
    stale_after_s: float | None = Field(
        5.0,
        gt=0,
        description="No valid frame for this long marks the reader down and reconnects. "
        "None: never (for readers that only talk when a tag is near).",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First delay before reconnecting.")
    reconnect_max_s: float = Field(
        30.0, gt=0, description="Longest delay between attempts (backoff doubles up to this)."
    )

    @field_validator("antennas")
    @classmethod
    def _distinct(cls, antennas: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(antennas)) != len(antennas):
            raise ValueError("antenna listed twice")
        return tuple(sorted(antennas))

    @model_validator(mode="after")
    def _backoff(self) -> _ReaderBase:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    @property
    def endpoint(self) -> str:
        """Where the reader is, as shown in logs."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The pyserial URL the device opens."""
        raise NotImplementedError


class _SerialReaderBase(_ReaderBase):
    port: str = Field(
        description="pyserial port or URL: /dev/ttyUSB0, /dev/serial/by-id/..., /dev/pts/N, "
        "socket://host:port (serial-to-Ethernet converter), rfc2217://host:port."
    )
    baudrate: Baudrate = Field(57600, description="Serial speed; must match the reader.")
    poll_interval_s: float = Field(
        0.2, gt=0, le=10, description="Seconds between inventory commands."
    )

    @field_validator("port")
    @classmethod
    def _known_port_form(cls, port: str) -> str:
        port = port.strip()
        if not port:
            raise ValueError("port must not be empty")
        if "://" in port:
            scheme, _, rest = port.partition("://")
            if scheme not in _URL_SCHEMES:
                raise ValueError(
                    f"unknown pyserial URL scheme {scheme!r}; use one of {_URL_SCHEMES}"
                )
            host_port = rest.split("?")[0].rpartition(":")[2]
            if scheme in ("socket", "rfc2217") and not host_port.isdigit():
                raise ValueError(f"{scheme}:// needs host:port, e.g. {scheme}://10.0.0.5:4001")
        return port

    @model_validator(mode="after")
    def _stale_after_poll(self) -> _SerialReaderBase:
        if self.stale_after_s is not None and self.stale_after_s <= self.poll_interval_s:
            raise ValueError("stale_after_s must be longer than poll_interval_s")
        return self

    @property
    def endpoint(self) -> str:
        return self.port

    @property
    def url(self) -> str:
        return self.port


class LlrpReaderConfig(_ReaderBase):
    protocol: Literal["llrp"] = Field(
        description="LLRP over TCP (Impinj, Zebra and other fixed readers)."
    )
    host: str = Field(min_length=1, description="Reader host name or IP address.")
    tcp_port: int = Field(5084, ge=1, le=65535, description="LLRP port (5084 unless changed).")
    keepalive_s: float = Field(
        5.0, gt=0, le=600, description="The reader sends KEEPALIVE this often; we answer each."
    )
    stale_after_s: float | None = Field(
        15.0,
        gt=0,
        description="No message (report or keepalive) for this long: reconnect. Must exceed "
        "keepalive_s.",
    )
    rospec_id: int = Field(1234, ge=1, le=2**32 - 1, description="Our ROSpec's id on the reader.")
    session: Gen2Session = Field(
        1, description="Gen2 session: 0 re-reads constantly, 1 short persistence, 2/3 long."
    )
    target: Literal["A", "B"] | None = Field(
        None,
        description="Single-target inventory of tags in state A or B (C1G2 state-aware "
        "singulation); None leaves the reader's default. Dual target needs a vendor extension.",
    )
    impinj_search_mode: ImpinjSearchMode | None = Field(
        None,
        description="Impinj readers only: the Octane inventory search mode (single_target, "
        "dual_target, single_target_with_suppression = TagFocus, single_target_b_to_a, "
        "dual_target_b_to_a_select), sent as the ImpinjInventorySearchMode extension after "
        "IMPINJ_ENABLE_EXTENSIONS. Impinj readers do not do standard state-aware singulation, so "
        "use this instead of `target` there. None: nothing vendor-specific is sent.",
    )
    tag_population: int = Field(32, ge=1, le=65535, description="Expected tags in the field.")
    mode_index: int | None = Field(
        None, ge=0, le=65535, description="C1G2 RF mode index from the capabilities; None: default."
    )
    antenna_power_dbm: dict[AntennaId, float] = Field(
        default_factory=dict,
        description="Transmit power per antenna in dBm, mapped to the nearest table entry not "
        "above it; antennas not listed keep the reader's setting.",
    )
    hop_table_id: int = Field(1, ge=0, le=65535, description="RFTransmitter HopTableID.")
    channel_index: int = Field(1, ge=0, le=65535, description="RFTransmitter ChannelIndex.")
    report_every_n_tags: int = Field(
        1,
        ge=1,
        le=65535,
        description="RO_ACCESS_REPORT after this many tag reports. 1 gives every read at once, "
        "with its own seen count; more batches them (a read then reaches the station later, so "
        "keep the batch well inside window_s). LLRP's 0 (report only when the ROSpec ends) is "
        "refused: our ROSpec runs until stopped, so no read would ever arrive.",
    )

    connect_timeout_s: float = Field(5.0, gt=0, le=60, description="TCP connect timeout.")

    @model_validator(mode="after")
    def _llrp_consistent(self) -> LlrpReaderConfig:
        if self.stale_after_s is not None and self.stale_after_s <= self.keepalive_s:
            raise ValueError("stale_after_s must be longer than keepalive_s")
        if self.target is not None and self.impinj_search_mode is not None:
            raise ValueError(
                "set target (standard state-aware singulation) or impinj_search_mode (Impinj "
                "readers), not both"
            )
        unknown = set(self.antenna_power_dbm) - set(self.antennas)
        if unknown:
            raise ValueError(f"antenna_power_dbm names antennas not in antennas: {sorted(unknown)}")
        return self

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.tcp_port}"

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.tcp_port}"


class ChafonReaderConfig(_SerialReaderBase):
    protocol: Literal["chafon"] = Field(
        description="Chafon / UHFReader18 / ZK-RFID102 serial readers and modules."
    )
    address: int = Field(0x00, ge=0, le=0xFF, description="Reader address (0xFF: broadcast).")
    power_dbm: int | None = Field(
        None, ge=0, le=30, description="Set output power at connect (command 0x2F); None: keep."
    )
    scan_time_100ms: int | None = Field(
        None, ge=3, le=255, description="Set inventory scan time at connect (0x25), x100 ms."
    )
    rssi_byte: Literal["ignore", "raw", "negative_dbm"] = Field(
        "ignore",
        description="What the byte some firmwares add after each EPC means: ignore it, use it "
        "as a raw relative strength, or read it as -N dBm. Verify on your model first.",
    )


class ThingMagicReaderConfig(_SerialReaderBase):
    protocol: Literal["thingmagic"] = Field(
        description="ThingMagic Mercury serial (M6e, M6e Nano, Micro, Sargas/USB Pro)."
    )
    baudrate: Baudrate = Field(115200, description="Serial speed; Mercury modules boot at 115200.")
    mode: Literal["timed", "continuous"] = Field(
        "timed",
        description="timed: one inventory of inventory_ms every poll_interval_s; continuous: "
        "back-to-back inventories.",
    )
    inventory_ms: int = Field(
        250, ge=10, le=65535, description="Duration of each Read Tag Multiple (0x22)."
    )
    read_power_dbm: float | None = Field(
        None, ge=-10, le=31.5, description="Read transmit power (0x92); None: keep."
    )
    session: Gen2Session | None = Field(None, description="Gen2 session (0x9B); None: keep.")
    target: Literal["A", "B", "AB", "BA"] | None = Field(
        None, description="Gen2 target (0x9B); AB/BA alternate; None: keep."
    )
    reply_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Wait for a reply beyond the inventory time."
    )


class AsciiReaderConfig(_SerialReaderBase):
    protocol: Literal["ascii"] = Field(
        description="Readers that print one tag per text line (keyboard-wedge style, many "
        "handhelds and cheap modules)."
    )
    baudrate: Baudrate = Field(9600, description="Serial speed; must match the reader.")
    line_pattern: str = Field(
        r"^\s*(?P<epc>[0-9A-Fa-f]{8,124})(?:[\s,;]+(?P<antenna>\d{1,2}))?"
        r"(?:[\s,;]+(?P<rssi>-?\d{1,3}(?:\.\d+)?))?\s*$",
        description="Regex for one line, with named group epc and optional antenna, rssi "
        "(dBm) and count.",
    )
    poll_command: str | None = Field(
        None,
        description="Text to send every poll_interval_s (CR LF added); None: the reader streams.",
    )
    stale_after_s: float | None = Field(
        None, gt=0, description="None: a streaming reader is quiet when no tag is near."
    )

    @field_validator("line_pattern")
    @classmethod
    def _pattern_has_epc(cls, pattern: str) -> str:
        import re

        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"line_pattern is not a valid regex: {exc}") from exc
        if "epc" not in compiled.groupindex:
            raise ValueError("line_pattern needs a named group (?P<epc>...)")
        unknown = set(compiled.groupindex) - {"epc", "antenna", "rssi", "count"}
        if unknown:
            raise ValueError(f"line_pattern has unknown groups {sorted(unknown)}")
        return pattern


ReaderConfigModel = (
    LlrpReaderConfig | ChafonReaderConfig | ThingMagicReaderConfig | AsciiReaderConfig
)
RfidReaderConfig = Annotated[ReaderConfigModel, Field(discriminator="protocol")]
_ADAPTER: TypeAdapter[ReaderConfigModel] = TypeAdapter(RfidReaderConfig)


def rfid_reader_config_from(data: dict[str, Any]) -> ReaderConfigModel:
    """Validate a plain mapping (from TOML or the command line) into the protocol's model."""
    return _ADAPTER.validate_python(data)


# --- the decisive read window ------------------------------------------------------------------


class AntennaWindow(_Strict):
    antenna: AntennaId = Field(description="Antenna port (1-based) whose reads count.")
    rssi_floor_dbm: float = Field(
        -60.0, ge=-120, le=0, description="Reads weaker than this on this antenna do not count."
    )


class ReadWindowConfig(_Strict):
    """What makes a tag read count as "in the carton": tune per station from the RSSI logs."""

    antennas: tuple[AntennaWindow, ...] = Field(
        (AntennaWindow(antenna=1),),
        min_length=1,
        description="Antennas under the carton, each with its RSSI floor. Reads on other "
        "antennas are rejected.",
    )
    min_seen_count: int = Field(
        5, ge=1, le=10_000, description="Reads of one EPC, above the floor, needed to count it."
    )
    require_rssi: bool = Field(
        True,
        description="Reject reads without an RSSI (they cannot be checked against the floor). "
        "False accepts them on seen count alone.",
    )
    epc_prefixes: tuple[str, ...] = Field(
        (),
        description="Hex prefixes of EPCs this site uses; others are rejected. Empty: any EPC.",
    )
    rssi_bin_db: float = Field(2.0, gt=0, le=20, description="Bin width of the RSSI histogram.")

    @field_validator("epc_prefixes")
    @classmethod
    def _hex_prefixes(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in prefixes:
            if not prefix or any(c not in "0123456789abcdefABCDEF" for c in prefix):
                raise ValueError(f"EPC prefix {prefix!r} is not hex")
        return tuple(p.upper() for p in prefixes)

    @field_validator("antennas")
    @classmethod
    def _distinct_antennas(cls, antennas: tuple[AntennaWindow, ...]) -> tuple[AntennaWindow, ...]:
        if len({a.antenna for a in antennas}) != len(antennas):
            raise ValueError("antenna listed twice")
        return antennas

    def floor_for(self, antenna: int) -> float | None:
        for window in self.antennas:
            if window.antenna == antenna:
                return window.rssi_floor_dbm
        return None
