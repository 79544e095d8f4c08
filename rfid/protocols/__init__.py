"""The reader protocols, in one explicit table: adding one means one module and one row."""

from __future__ import annotations

from collections.abc import Callable

from rfid.config import (
    AsciiReaderConfig,
    ChafonReaderConfig,
    LlrpReaderConfig,
    ReaderConfigModel,
    ThingMagicReaderConfig,
)
from rfid.protocols.ascii import AsciiEngine
from rfid.protocols.chafon import ChafonEngine
from rfid.protocols.framing import Engine
from rfid.protocols.llrp import LlrpEngine
from rfid.protocols.thingmagic import ThingMagicEngine

PROTOCOL_NAMES = ("llrp", "chafon", "thingmagic", "ascii")


def new_engine(config: ReaderConfigModel) -> Engine:
    """A fresh protocol session for one connection."""
    factories: dict[type, Callable[..., Engine]] = {
        LlrpReaderConfig: LlrpEngine,
        ChafonReaderConfig: ChafonEngine,
        ThingMagicReaderConfig: ThingMagicEngine,
        AsciiReaderConfig: AsciiEngine,
    }
    return factories[type(config)](config)
