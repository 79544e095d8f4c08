"""Configuration of the station's outputs: one `[[actuators]]` entry per device (a Modbus unit, a
USB relay board, a simulated one), each driving some of the station's output roles.

The `type` key picks the driver. Every entry maps the roles it drives to its own addresses (Modbus
coil numbers, relay channels); together the entries must drive the stack light's three colours
and the diverter at most once each.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from station.session import Route

Baudrate = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


class OutputMap(BaseModel):
    """Which address of the device drives which output; a role left out is not on this device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    green: int | None = Field(default=None, ge=0, le=65535, description="Green lamp (PASS).")
    amber: int | None = Field(
        default=None, ge=0, le=65535, description="Amber lamp (waiting, station problem)."
    )
    red: int | None = Field(default=None, ge=0, le=65535, description="Red lamp (BLOCK, REVIEW).")
    buzzer: int | None = Field(default=None, ge=0, le=65535, description="Buzzer.")
    diverter: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Diverter / reject gate to the exception lane; see `diverter_on_means`.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> OutputMap:
        used = list(self.addresses().values())
        if len(used) != len(set(used)):
            raise ValueError("two outputs share one address")
        if not used:
            raise ValueError("an actuator must drive at least one output")
        return self

    def addresses(self) -> dict[str, int]:
        """role -> address, for the roles this device drives."""
        return {role: a for role, a in self.model_dump().items() if a is not None}


class _ActuatorBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=64,
        description="Name in logs, health and fault events (device `actuator <name>`).",
    )
    outputs: OutputMap = Field(description="The roles this device drives, by address.")
    diverter_on_means: Route = Field(
        default="straight",
        description="Where the gate sends a carton while its output is ON. `straight` (the "
        "default) is fail-safe: a dead controller, a cut wire or a power loss leave the output "
        "OFF and the carton goes to the exception lane. Use `exception` only for a gate whose "
        "mechanics cannot be wired that way.",
    )
    refresh_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="While nothing changes, the outputs are written and verified again this often, "
        "so a device that died is found before the next verdict, not at it.",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First delay before reopening.")
    reconnect_max_s: float = Field(
        default=30.0, gt=0, description="Longest delay between attempts (backoff doubles up to it)."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> _ActuatorBase:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class _ModbusBase(_ActuatorBase):
    unit_id: int = Field(
        default=1, ge=0, le=247, description="Modbus unit (slave) id of the coil controller."
    )
    timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="How long one request may take before it fails."
    )
    read_back: bool = Field(
        default=True,
        description="After writing, read the coils back and compare (one more round trip); off: "
        "only the write's echo is checked.",
    )


class ModbusTcpActuatorConfig(_ModbusBase):
    type: Literal["modbus_tcp"] = Field(description="Modbus TCP coils (a PLC or an I/O module).")
    host: str = Field(min_length=1, description="Host name or address of the Modbus TCP device.")
    tcp_port: int = Field(default=502, ge=1, le=65535, description="Modbus TCP port.")

    @property
    def port(self) -> str:
        return f"{self.host}:{self.tcp_port}"


class ModbusRtuActuatorConfig(_ModbusBase):
    type: Literal["modbus_rtu"] = Field(description="Modbus RTU coils over RS-485.")
    serial_port: str = Field(
        min_length=1, description="Serial port of the RS-485 adapter, e.g. /dev/ttyUSB0."
    )
    baudrate: Baudrate = Field(default=9600, description="Serial speed; must match the device.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity: N, E or O.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")

    @property
    def port(self) -> str:
        return self.serial_port


class SerialRelayActuatorConfig(_ActuatorBase):
    type: Literal["serial_relay"] = Field(
        description="A USB relay board speaking the LCUS/CH340 protocol (A0 ch state sum)."
    )
    url: str = Field(
        min_length=1,
        description="pyserial port or URL of the board: /dev/ttyUSB0, /dev/serial/by-id/...",
    )
    baudrate: Baudrate = Field(default=9600, description="Serial speed (LCUS boards: 9600).")
    status_query: bool = Field(
        default=True,
        description="After switching, ask the board for its channel states (0xFF) and compare. "
        "Single-channel LCUS-1 boards do not answer it: set false for those (a write is then "
        "checked only by the port accepting it).",
    )
    timeout_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="How long the board may take to answer a status query.",
    )

    @model_validator(mode="after")
    def _channels(self) -> SerialRelayActuatorConfig:
        if any(not 1 <= a <= 255 for a in self.outputs.addresses().values()):
            raise ValueError("relay channels count from 1 (and fit one byte)")
        return self

    @property
    def port(self) -> str:
        return self.url


class SimulatedActuatorConfig(_ActuatorBase):
    type: Literal["simulated"] = Field(
        description="No hardware: every change is recorded and logged (demo, tests, shadow trials)."
    )

    @property
    def port(self) -> str:
        return "simulated"


ActuatorConfig = Annotated[
    ModbusTcpActuatorConfig
    | ModbusRtuActuatorConfig
    | SerialRelayActuatorConfig
    | SimulatedActuatorConfig,
    Field(discriminator="type"),
]


def default_actuators() -> list[ActuatorConfig]:
    """A station without an [[actuators]] section drives a simulated light and diverter."""
    outputs = OutputMap(green=0, amber=1, red=2, buzzer=3, diverter=4)
    return [SimulatedActuatorConfig(type="simulated", name="simulated", outputs=outputs)]


def check_roles(actuators: list[ActuatorConfig]) -> None:
    """Each role driven by at most one device, names unique; ValueError says what clashes."""
    names = [a.name for a in actuators]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"actuator name used twice: {', '.join(sorted(dupes))}")
    owners: dict[str, str] = {}
    for actuator in actuators:
        for role in actuator.outputs.addresses():
            if role in owners:
                raise ValueError(
                    f"output {role} is driven by both {owners[role]} and {actuator.name}"
                )
            owners[role] = actuator.name
