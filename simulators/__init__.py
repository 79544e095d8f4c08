"""Hardware and backend simulators that speak the real wire protocols."""
