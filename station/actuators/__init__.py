"""The station's outputs: the stack light (green, amber, red, buzzer) and the diverter to the
exception lane, behind one interface (`ActuatorBank`), over Modbus TCP/RTU coils, a USB relay
board or a simulated device. docs/hardware/actuators.md has the wiring and the fail-safe rules."""
