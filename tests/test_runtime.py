"""TensorFlow's thread pools follow the workload unless LIGAN_TF_INTER_THREADS says otherwise."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from models.runtime import configure_tensorflow
from setup.config import load_settings
import tensorflow as tf
settings = load_settings()
configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads,
                     training=sys.argv[1] == "train")
print(tf.config.threading.get_inter_op_parallelism_threads())
"""


@pytest.mark.parametrize("workload, variable, expected", [
    ("render", None, "RENDER_INTER_THREADS"),
    ("train", None, "TRAINING_INTER_THREADS"),
    ("train", "3", 3),
    ("render", "3", 3),
])
def test_inter_op_threads_by_workload_and_setting(workload, variable, expected) -> None:
    from models import runtime

    env = {k: v for k, v in os.environ.items() if k != "LIGAN_TF_INTER_THREADS"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    if variable is not None:
        env["LIGAN_TF_INTER_THREADS"] = variable
    proc = subprocess.run([sys.executable, "-c", PROBE, workload], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = getattr(runtime, expected) if isinstance(expected, str) else expected
    assert int(proc.stdout.strip().splitlines()[-1]) == want
