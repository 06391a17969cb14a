"""Smoke test of the backend benchmark: ``tests/bench/backend.py --quick`` runs end to end.

It checks that the benchmark works and reports sane numbers, not how fast anything is.
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_bench



def test_quick_backend_benchmark_reports_every_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_bench("backend.py", "--quick", "--json", str(out), timeout=300)
    assert "task: fillers, a page of 8 faces" in proc.stdout
    assert "queue overhead" in proc.stdout and "req/s" in proc.stdout
    report = json.loads(out.read_text())
    assert report["amount"] == 8 and len(report["direct_s"]) == len(report["queued_s"]) == 3
    assert all(t > 0 for t in report["direct_s"] + report["queued_s"])
    assert report["get_rps_while_running"] > 0 and report["get_rps_idle"] > 0
    assert report["post_to_on_result_median_s"] > 0
    assert -1 < report["queue_overhead"] < 100
