"""Smoke test of the inversion benchmark: ``tests/bench/inversion.py --quick`` runs end to end
on real photos and reports every method and page. It checks the benchmark, not the speed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LONDON = REPO.parent / "shared" / "faces" / "london"


def test_quick_inversion_benchmark_reports_every_method(tmp_path: Path) -> None:
    if not LONDON.is_dir():
        pytest.skip(f"the real photos are not there: {LONDON} (../shared/faces/london)")
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/inversion.py", "--quick", "--json",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"encoder", "encoder+projector", "encoder+refine"}
    for method, row in report["methods"].items():
        assert 0 <= row["mse"]["mean"] <= row["mse"]["worst"] <= 1, method
        assert -1 <= row["ssim"]["worst"] <= row["ssim"]["mean"] <= 1, method
        assert row["seconds"]["mean"] > 0 and row["identity"]["mean"] >= 0
    # the projector starts from the encoder's latent and only lowers the loss it minimises
    assert report["methods"]["encoder+projector"]["mse"]["mean"] <= \
        report["methods"]["encoder"]["mse"]["mean"] + 1e-6
    assert [p["page"] for p in report["pages"]] == [1, 2]
    assert all(p["seconds"] > 0 for p in report["pages"])
    assert "goals (default model" in proc.stdout
