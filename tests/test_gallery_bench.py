"""The gallery benchmark runs end to end and reports every timing with its ratio."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_bench


def test_gallery_benchmark_reports_each_listing_against_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_bench("gallery.py", "--faces", "300", "--repeats", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds = json.loads(out.read_text())["seconds"]
    assert len(seconds) == 5 and all(v > 0 for v in seconds.values())
    assert proc.stdout.count("× the reference") == 5
