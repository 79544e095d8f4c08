"""What the station shows and where the carton goes, as one value, and the ON/OFF state of every
output role that follows from it."""

from __future__ import annotations

from dataclasses import dataclass

from station.light import LightColor
from station.session import Route


@dataclass(frozen=True, slots=True)
class StationOutputs:
    """The light, the buzzer and the diverter. The default is the fail-safe state a station starts
    in: light off, quiet, the carton to the exception lane."""

    light: LightColor = LightColor.OFF
    buzzer: bool = False
    route: Route = "exception"

    def role_states(self, diverter_on_means: Route) -> dict[str, bool]:
        """role -> output ON, for a diverter whose ON position is `diverter_on_means`."""
        return {
            "green": self.light is LightColor.GREEN,
            "amber": self.light is LightColor.AMBER,
            "red": self.light is LightColor.RED,
            "buzzer": self.buzzer,
            "diverter": self.route == diverter_on_means,
        }
