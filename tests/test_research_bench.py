"""The research benchmark runs end to end, and a large random task's memory stays flat.

The memory bound is the test: making 6 000 faces (ten times the first task's 600) may raise the
backend process's resident size by at most 100 MB, because records stream to disk in chunks and
a result keeps at most 256 of them. The full 30 000 is the benchmark's default
(``tests/bench/research.py``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEMORY_BOUND_MB = 100


def test_quick_research_benchmark_reports_every_number_and_flat_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/research.py", "--quick", "--amount",
                           "6000", "--json", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for words in ("faces/s", "resident memory", "transition, 8 frames", "style mixing",
                  "attribute filter: skipped, the bundle has no attribute model"):
        assert words in proc.stdout, proc.stdout
    report = json.loads(out.read_text())
    assert report["amount"] == 6000
    assert report["random_faces_per_s"] > 0 and report["generator_faces_per_s"] > 0
    assert report["transition_s"] > 0 and report["style_mix_s"] > 0
    assert report["rss_growth_mb"] < MEMORY_BOUND_MB, report
