"""Benchmarks: `make bench` (full) and `make bench-smoke` (CI keeps them from rotting)."""
