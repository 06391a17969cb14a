"""FID from Inception-v3 weights the user supplies (none can be downloaded on our machines).

The weights are Keras's ImageNet Inception-v3 file — ``inception_v3_weights_tf_dim_ordering_
tf_kernels_notop.h5`` (or the full file with the classifier on top), as ``keras.applications``
would otherwise download it — or a ``.weights.h5`` saved from ``keras.applications.InceptionV3``.
Features are the 2,048 averaged activations of the last pooling layer, on faces resized to
299 × 299 with bilinear filtering and scaled to [-1, 1], as Keras's ``preprocess_input`` does.

This is FID's definition with Keras's port of the network. Published FIDs use the original
TensorFlow graph (``pool_3`` of ``inception-2015-12-05``) and its resizing; values from the two
differ slightly, so compare FIDs measured the same way only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

INCEPTION_SIZE = 299
FEATURES = 2048


class InceptionWeightsError(ValueError):
    """The Inception weights file is missing or is not a Keras Inception-v3 weights file."""


class InceptionFeatures:
    """Inception-v3 pool features of uint8 faces, from a user-supplied weights file."""

    def __init__(self, weights: str | os.PathLike, batch_size: int = 32) -> None:
        self.path = Path(weights)
        if not self.path.is_file():
            raise InceptionWeightsError(f"no Inception weights file at {self.path}")
        self.batch_size = batch_size
        from models.bundle import sha256_file

        self.sha256 = sha256_file(self.path)
        self.model = self._load()

    def _load(self):
        import keras

        errors = []
        for include_top in (False, True):  # the "notop" file first, then the full one
            net = keras.applications.InceptionV3(
                include_top=include_top, weights=None, pooling="avg",
                input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
            try:
                net.load_weights(str(self.path))
            except Exception as exc:  # Keras raises many types for a wrong or broken file
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                              if str(exc) else type(exc).__name__)
                continue
            if include_top:
                net = keras.Model(net.input, net.get_layer("avg_pool").output)
            return net
        raise InceptionWeightsError(
            f"{self.path} is not a Keras Inception-v3 weights file (tried without and with the "
            f"classifier on top: {'; '.join(errors)})")

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """[N, 2048] float64 features of uint8 RGB images [N, H, W, 3] (any size)."""
        import tensorflow as tf

        out = []
        images = list(images)
        for start in range(0, len(images), self.batch_size):
            batch = tf.convert_to_tensor(np.stack(images[start:start + self.batch_size]),
                                         tf.float32)
            batch = tf.image.resize(batch, (INCEPTION_SIZE, INCEPTION_SIZE),
                                    method="bilinear", antialias=True)
            out.append(np.asarray(self.model(batch / 127.5 - 1.0, training=False)))
        if not out:
            raise ValueError("Inception features of no images")
        return np.concatenate(out).astype(np.float64)

    def describe(self) -> dict[str, str]:
        return {"weights": self.path.name, "sha256": self.sha256}
