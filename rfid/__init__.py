"""RFID readers and EPC decoding (see issue 3)."""
