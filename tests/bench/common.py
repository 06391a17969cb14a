"""What the benchmark scripts share: the repository on ``sys.path``, quiet TensorFlow logs, the
tiny generator configuration of quick runs, and progress lines on stderr.

Benchmarks are run as scripts (``python tests/bench/NAME.py``), whose own folder is on
``sys.path``, so they ``import common`` before anything of LiGAN.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SECRET = "bench-secret"  # the per-job secret of benchmark backends
# A generator small enough for quick runs (seconds on a laptop CPU).
TINY = dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=1024,
            channel_max=64)


def say(msg: str) -> None:
    """A progress line, on stderr so that stdout holds only the summary."""
    print(msg, file=sys.stderr, flush=True)
