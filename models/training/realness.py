"""Can a classifier tell the generator's faces from real ones? The lineup's first test.

A filler that looks generated stands out in a lineup whatever its likeness. Two detectors are
trained on equal numbers of held-out real faces and generated faces and scored by
cross-validation (each face is judged by a detector that never saw it):

* **embedding detector**: logistic regression on dlib's identity embeddings (what a face
  recogniser sees: identity-level oddities, such as a narrow range of faces);
* **pixel detector**: a small CNN on the images themselves (texture, blur, streaks, colour:
  what makes a face look rendered).

50 % is chance (indistinguishable); the goal for a usable generator is 75 % at most.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Accuracy at or below which generated faces pass for real ones (issue 18's goal).
PASSES_FOR_REAL = 0.75
MIN_STEPS = 150


def _balanced(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(real), len(fake))
    x = np.concatenate([real[rng.permutation(len(real))[:n]],
                        fake[rng.permutation(len(fake))[:n]]])
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.int64)
    return x, y


def _folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Fold index per sample, stratified by class."""
    fold = np.zeros(len(y), np.int64)
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(y == label))
        fold[members] = np.arange(len(members)) % folds
    return [np.flatnonzero(fold == k) for k in range(folds)]


def embedding_detector_accuracy(real: np.ndarray, fake: np.ndarray, folds: int = 5,
                                seed: int = 0) -> float:
    """Cross-validated accuracy of a logistic regression on identity embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x, y = _balanced(np.asarray(real, np.float64), np.asarray(fake, np.float64), rng)
    right = 0
    for test in _folds(y, folds, rng):
        train = np.setdiff1d(np.arange(len(y)), test)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        model.fit(x[train], y[train])
        right += int((model.predict(x[test]) == y[test]).sum())
    return right / len(y)


def pixel_detector_accuracy(real: np.ndarray, fake: np.ndarray, folds: int = 3,
                            epochs: int = 8, seed: int = 0) -> float:
    """Cross-validated accuracy of a small CNN on the images (uint8 [N, R, R, 3], one R)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x, y = _balanced(np.asarray(real), np.asarray(fake), rng)
    x = x.astype(np.float32) / 127.5 - 1.0
    right = 0
    for k, test in enumerate(_folds(y, folds, rng)):
        train = np.setdiff1d(np.arange(len(y)), test)
        model = _small_cnn(x.shape[1], seed + k)
        per_epoch = -(-len(train) // 64)
        # at least MIN_STEPS updates, so that small sets train as far as large ones
        for _ in range(max(epochs, -(-MIN_STEPS // per_epoch))):
            order = rng.permutation(train)
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                model.train_on_batch(x[batch], y[batch].astype(np.float32))
        logits = np.concatenate([model(x[test[i:i + 256]], training=False).numpy()[:, 0]
                                 for i in range(0, len(test), 256)])
        right += int(((logits > 0).astype(np.int64) == y[test]).sum())
        tf.keras.backend.clear_session()
    return right / len(y)


def _small_cnn(resolution: int, seed: int):
    import tensorflow as tf

    def init(i: int):
        return tf.keras.initializers.GlorotUniform(seed=seed * 10 + i)

    layers = [tf.keras.Input((resolution, resolution, 3))]
    for i, channels in enumerate((16, 32, 64, 64)):
        layers.append(tf.keras.layers.Conv2D(channels, 3, strides=2, padding="same",
                                             activation="relu", kernel_initializer=init(i)))
    layers += [tf.keras.layers.GlobalAveragePooling2D(),
               tf.keras.layers.Dense(1, kernel_initializer=init(9))]
    model = tf.keras.Sequential(layers)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def real_vs_generated(real_embeddings: np.ndarray, fake_embeddings: np.ndarray,
                      real_images: np.ndarray | None = None,
                      fake_images: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """Both detectors' cross-validated accuracies (the pixel one only with images)."""
    out: dict[str, Any] = {
        "faces_each": int(min(len(real_embeddings), len(fake_embeddings))),
        "embedding_accuracy": round(embedding_detector_accuracy(real_embeddings,
                                                                fake_embeddings, seed=seed), 4),
        "goal": PASSES_FOR_REAL}
    if real_images is not None and fake_images is not None:
        out["pixel_accuracy"] = round(pixel_detector_accuracy(real_images, fake_images,
                                                              seed=seed), 4)
    return out
