"""The research benchmark runs end to end, and a large random task's memory stays flat.

The memory bound is the test: making 2 000 faces (ten times the first task's 200, and eight
times the 256 records a result keeps) may raise the backend process's resident size by at most
100 MB, because records stream to disk in chunks. The full 30 000 is the benchmark's default
(``tests/bench/research.py``).
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_bench

MEMORY_BOUND_MB = 100


def test_quick_research_benchmark_reports_every_number_and_flat_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_bench("research.py", "--quick", "--amount", "2000", "--json", str(out))
    for words in ("faces/s", "resident memory", "transition, 8 frames", "style mixing",
                  "attribute filter: skipped, the bundle has no attribute model"):
        assert words in proc.stdout, proc.stdout
    report = json.loads(out.read_text())
    assert report["amount"] == 2000
    assert report["random_faces_per_s"] > 0 and report["generator_faces_per_s"] > 0
    assert report["transition_s"] > 0 and report["style_mix_s"] > 0
    assert report["rss_growth_mb"] < MEMORY_BOUND_MB, report
