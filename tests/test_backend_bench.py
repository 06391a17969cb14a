"""Smoke test of the backend benchmark: ``tests/bench/backend.py --quick`` runs end to end.

It checks that the benchmark works and reports sane numbers, not how fast anything is.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_backend_benchmark_reports_every_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/backend.py", "--quick", "--json",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "task: fillers, a page of 24 faces" in proc.stdout
    assert "queue overhead" in proc.stdout and "req/s" in proc.stdout
    report = json.loads(out.read_text())
    assert report["amount"] == 24 and len(report["direct_s"]) == len(report["queued_s"]) == 3
    assert all(t > 0 for t in report["direct_s"] + report["queued_s"])
    assert report["get_rps_while_running"] > 0 and report["get_rps_idle"] > 0
    assert report["post_to_on_result_median_s"] > 0
    assert -1 < report["queue_overhead"] < 100
