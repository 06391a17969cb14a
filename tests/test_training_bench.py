"""Smoke test of the training benchmark: ``tests/bench/training.py --quick`` runs end to end.

It checks that the benchmark works and reports sane numbers (and that the loader outpaces the
training steps, which the benchmark's exit status says), not how fast anything is.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_quick_training_benchmark_reports_every_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/training.py", "--quick", "--json",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "train img/s" in proc.stdout and "load/train" in proc.stdout
    assert "faster than training at every resolution" in proc.stdout
    report = json.loads(out.read_text())
    [row] = report["results"]
    assert row["resolution"] == 32 and row["train_img_s"] > 0 and row["load_img_s"] > 0
    assert row["ratio"] > 1
    assert row["ratio"] == pytest.approx(row["load_img_s"] / row["train_img_s"], rel=0.02)


def test_inter_thread_comparison_runs_each_count_and_prints_the_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "tests/bench/training.py", "--quick",
                           "--encoder-steps", "0", "--inter-threads", "1", "2", "--json",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "1 inter-op thread(s)" in proc.stdout and "2 inter-op thread(s)" in proc.stdout
    report = json.loads(out.read_text())
    assert [run["inter_threads"] for run in report["runs"]] == [1, 2]
    [ratio] = report["inter_op_ratios"]
    rates = [run["results"][0]["train_img_s"] for run in report["runs"]]
    assert ratio["ratio"] == pytest.approx(rates[1] / rates[0], rel=0.01)
    assert f"G+D 32 px float32: inter-op 2/1 {ratio['ratio']:.2f}" in proc.stdout
