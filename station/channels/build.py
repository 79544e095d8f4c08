"""Which channels a station runs, from its config: the one place a new channel is added."""

from __future__ import annotations

from station.channels.base import ChannelContext, EvidenceChannel
from station.channels.weight import WeightChannel
from station.config import StationConfig


def build_channels(config: StationConfig, context: ChannelContext) -> list[EvidenceChannel]:
    channels: list[EvidenceChannel] = [WeightChannel(config.scale, config.weight, context)]
    return channels
