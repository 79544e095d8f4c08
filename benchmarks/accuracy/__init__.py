"""Measured accuracy: generated carton streams through the real channel code and policy.

python -m benchmarks.accuracy [--smoke] [--seed N]    # table + bench-results/accuracy.json

`run(smoke)` gives the figures `benchmarks.run` collects. docs/accuracy.md describes the model.
"""

from benchmarks.accuracy.report import run

__all__ = ["run"]
