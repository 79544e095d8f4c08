"""Which channels a station runs, from its config: the one place a new channel is added."""

from __future__ import annotations

from station.channels.base import ChannelContext, EvidenceChannel
from station.channels.rfid import RfidChannel
from station.channels.weight import WeightChannel
from station.config import StationConfig


def build_channels(config: StationConfig, context: ChannelContext) -> list[EvidenceChannel]:
    channels: list[EvidenceChannel] = [WeightChannel(config.scale, config.weight, context)]
    if config.rfid is not None:
        channels.append(RfidChannel(config.rfid, config.station.data_dir, context))
    return channels
