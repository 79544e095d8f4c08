"""The end-to-end harness (and its failure-log hook) for the camera tests, from tests/e2e."""

from tests.e2e.conftest import make_harness, pytest_runtest_makereport

__all__ = ["make_harness", "pytest_runtest_makereport"]
