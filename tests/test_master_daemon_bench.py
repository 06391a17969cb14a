"""Smoke test of the master daemon benchmark: ``tests/bench/master_daemon.py --quick`` runs
end to end and reports every number (not how fast anything is: the machine is shared)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_master_daemon_benchmark_reports_every_number(tmp_path: Path,
                                                            tiny_bundle_dir: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/master_daemon.py", "--quick",
                           "--bundle", str(tiny_bundle_dir), "--json", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "events/s relayed" in proc.stdout and "overhead" in proc.stdout
    report = json.loads(out.read_text())
    ev = report["events"]
    assert ev["sessions"] == 20 and ev["callback_errors"] == 0
    assert ev["events_received"] == ev["callbacks_sent"] > 0  # every callback reached its tab
    assert 0 < ev["delay_p50_ms"] <= ev["delay_p99_ms"] < 10_000
    assert report["proxy"]["direct_median_ms"] > 0 and report["proxy"]["proxied_median_ms"] > 0
    assert report["start_to_ready_local_s"] and report["start_to_ready_local_s"] > 0
