"""What the simulated packing table tells its simulated camera: the units in the carton now.

The rig (`simulators.rig`) rewrites this small JSON file at every insertion; the daemon's camera
source (`vision.sources.SimulatorSource` with `scene_file`) reads it and renders that carton. It
is its own module so the rig stays free of OpenCV and numpy.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_SCENE_BYTES = 64_000


class SceneUnit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sku: str = Field(min_length=1, max_length=64, description="The unit's SKU (its look).")
    gtin: str | None = Field(
        default=None, pattern=r"^[0-9]{13}$", description="EAN-13 printed on its label, if any."
    )
    over: int | None = Field(
        default=None,
        ge=0,
        description="Set down over the unit at this index of `units` (an earlier one), hiding it.",
    )


class CameraScene(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    carton: int = Field(default=0, ge=0, description="Which carton (a new one looks different).")
    units: tuple[SceneUnit, ...] = Field(
        default=(), max_length=200, description="Units in the carton, in the order put in."
    )
    hand: bool = Field(default=False, description="A hand over the carton.")
    unplugged: bool = Field(
        default=False, description="The camera's cable is out: it delivers no frames at all."
    )

    @model_validator(mode="after")
    def _over_an_earlier_unit(self) -> CameraScene:
        for i, unit in enumerate(self.units):
            if unit.over is not None and unit.over >= i:
                raise ValueError(f"unit {i} cannot lie over unit {unit.over}: not put in before it")
        return self


def write_scene(path: Path, scene: CameraScene) -> None:
    """Replace the file atomically: the camera never reads half a scene."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(scene.model_dump_json())
    os.replace(tmp, path)


def read_scene(path: Path) -> CameraScene | None:
    """The scene in `path`, or None when it is missing, too large or not a scene."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SCENE_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_SCENE_BYTES:
        return None
    try:
        return CameraScene.model_validate_json(raw)
    except ValidationError:
        return None
