"""Smoke test of the inversion benchmark: ``tests/bench/inversion.py --quick`` runs end to end
on real photos and reports every method and page. It checks the benchmark, not the speed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_bench

REPO = Path(__file__).resolve().parent.parent
LONDON = REPO.parent / "shared" / "faces" / "london"


def test_quick_inversion_benchmark_reports_every_method(tmp_path: Path) -> None:
    if not LONDON.is_dir():
        pytest.skip(f"the real photos are not there: {LONDON} (../shared/faces/london)")
    out = tmp_path / "bench.json"
    proc = run_bench("inversion.py", "--quick", "--json", str(out), timeout=600)
    report = json.loads(out.read_text())["float32"]  # one report per precision measured
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
