"""A short run of ``bench/load.py``: streaming and plain requests under load, all checked exactly.

The full run (200 streams and 50 requests/s for 60 s) and its figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.slow
def test_short_load_run_has_no_errors(tmp_path):
    report_path = tmp_path / "load.json"
    command = [sys.executable, "-m", "bench.load", "--duration", "10", "--streams", "50", "--rps", "10"]

    finished = subprocess.run(
        [*command, "--json", str(report_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]
    results = json.loads(report_path.read_text())["results"]
    assert results["streams"]["errors"] == 0
    assert results["plain"]["errors"] == 0
    assert results["streams"]["ok"] >= 50
    assert results["plain"]["ok"] >= 50
    assert results["relay_rejected_requests"] == 0
