"""The station's local HTTP side: the packer's screen, the Station API, metrics and health."""
