"""Smoke test of the generator benchmark: ``tests/bench/generator.py --quick`` runs end to end.

It checks that the benchmark works and reports sane numbers, not how fast anything is.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_positive_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/generator.py", "--quick", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reference comparison SKIPPED" in proc.stderr
    assert "% bound" in proc.stdout

    report = json.loads(out.read_text())
    rows = report["results"]
    assert [(r["resolution"], r["batch"]) for r in rows] == [(32, 1), (32, 2)]
    for row in rows:
        assert row["images_per_s"] > 0
        assert row["flops_per_image"] > 0
        assert row["flop_bound_pct"] > 0
        assert row["local_flop_bound_pct"] > 0
        assert row["ours_over_naive"] > 0
        assert row["peak_rss_mb"] >= row["base_rss_mb"] > 0
    assert report["peak_conv"]["peak_gflops_per_s"] > 0
