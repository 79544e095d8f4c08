"""The daemon's command line pulls in no camera or inference stack: a station without vision
must stay small (the memory figure in the README)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("cv2", "onnxruntime", "numpy", "zxingcpp", "torch")


def test_packstation_run_imports_no_vision_stack() -> None:
    probe = (
        "import sys\n"
        "from station.cli import _modules_for, build_parser\n"
        "build_parser(_modules_for('run')).parse_args(['run', 'station.toml'])\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"heavy modules imported: {done.stdout.strip()}"


def test_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "station.cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for command in (
        "run",
        "demo",
        "check-config",
        "simulate",
        "epc",
        "rfid",
        "status",
        "vision",
        "weights",
        "scenario",
    ):
        assert f"    {command}" in done.stdout, command
