"""Process-wide TensorFlow set-up shared by the command line, servers and benchmarks."""
from __future__ import annotations

import os
import sys
import tempfile

#: Start-up notices that TensorFlow's C++ side writes while it is imported, before it reads
#: TF_CPP_MIN_LOG_LEVEL: on CPUs where oneDNN's custom operations are on by default (AVX-512
#: and AMX Xeons, not AVX2-only ones) each import says so twice, with absl's preamble.
STARTUP_NOTICES = ("oneDNN custom operations are on",
                   "All log messages before absl::InitializeLog() is called")


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ start-up chatter unless the operator asked for it
    (TF_CPP_MIN_LOG_LEVEL set to 0), and import TensorFlow with it hidden.

    Must run before TensorFlow is imported to take effect. Lines of the import other than
    :data:`STARTUP_NOTICES` still reach stderr.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("", "0"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)  # the C++ side writes to the descriptor, not sys.stderr
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not any(notice in line for notice in STARTUP_NOTICES):
                    sys.stderr.write(line)
            sys.stderr.flush()


#: Inter-op threads when rendering (servers, generation, inversion): generator graphs are a
#: chain of large operations, and running two at once on a small CPU only makes them fight over
#: the same cores (measured: +12 % images/s at batch 1 on 2 cores with one thread).
RENDER_INTER_THREADS = 1
#: Inter-op threads when training: a training step's graph holds independent branches (G and D,
#: real and fake passes, their gradients) that two threads run side by side. Measured on 2
#: cores, the 64-px StyleGAN2 run (batch 32, feature discriminator) did 2 kimg in 148 s
#: against 170-178 s with one thread; ``tests/bench/training.py --inter-threads 1 2``.
TRAINING_INTER_THREADS = 2


def configure_tensorflow(intra_threads: int = 0, inter_threads: int | None = None,
                         training: bool = False) -> None:
    """Thread pools for this process (0 = TensorFlow's choice; ``inter_threads`` None = by
    workload: :data:`TRAINING_INTER_THREADS` when ``training``, else
    :data:`RENDER_INTER_THREADS`). Call before the first TensorFlow operation.
    """
    if inter_threads is None:
        inter_threads = TRAINING_INTER_THREADS if training else RENDER_INTER_THREADS
    quiet_tensorflow_logs()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    except RuntimeError:
        pass  # TensorFlow already started; the pools are fixed for this process
    # Grappler's remapper fails on the gradient graphs of training and projection ("remapper
    # failed: ... LeakyReluGrad", logged as an error, then the graph runs unremapped); it buys
    # nothing measurable for these networks (64 px generator, batch 1 and 8, A/B within noise),
    # so it is off rather than alarming operators with error lines.
    tf.config.optimizer.set_experimental_options({"remapping": False})


def describe_devices() -> list[str]:
    """Human-readable names of the devices TensorFlow will use."""
    import tensorflow as tf

    return [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]
