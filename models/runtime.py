"""Process-wide TensorFlow set-up shared by the command line, servers and benchmarks."""
from __future__ import annotations

import os


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ start-up chatter unless the operator asked for it.

    Must run before TensorFlow is imported to take effect.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_tensorflow(intra_threads: int = 0, inter_threads: int = 1) -> None:
    """Thread pools for this process (0 = TensorFlow's choice).

    One inter-op thread is the default: generator graphs are a chain of large operations, and
    running two at once on a small CPU only makes them fight over the same cores (measured:
    +12 % images/s at batch 1 on 2 cores). Call before the first TensorFlow operation.
    """
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
