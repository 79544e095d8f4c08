"""Which channels a station runs, from its config: the one place a new channel is added."""

from __future__ import annotations

from station.channels.base import ChannelContext, EvidenceChannel
from station.channels.insertion import InsertionChannel
from station.channels.rfid import RfidChannel
from station.channels.weight import WeightChannel
from station.config import StationConfig


def build_channels(config: StationConfig, context: ChannelContext) -> list[EvidenceChannel]:
    weight = WeightChannel(config.scale, config.weight, context)
    channels: list[EvidenceChannel] = [weight]
    if config.weight.per_insertion:
        channels.append(
            InsertionChannel(weight, config.weight, config.policy.min_confidence, context)
        )
    if config.rfid is not None:
        channels.append(RfidChannel(config.rfid, config.station.data_dir, context))
    if config.vision is not None:
        # Imported here: the camera and inference stack (OpenCV, numpy, onnxruntime) is loaded
        # only by stations that have a camera.
        from station.channels.vision import VisionEvidenceChannel

        channels.append(
            VisionEvidenceChannel(config.vision, config.station.data_dir, context, weight)
        )
    return channels
