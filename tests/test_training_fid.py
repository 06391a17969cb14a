"""FID from a user-supplied Inception-v3 weights file (models.training.fid).

No ImageNet weights exist on our machines, so the tests save a randomly initialised
Inception-v3 in Keras's weights format: enough to check that a file is read, features come out
with the right shape, FID behaves as a distance, and bad files are refused with a message.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.training.fid import FEATURES, InceptionFeatures, InceptionWeightsError


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("inception") / "inception_v3_notop.weights.h5"
    net = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                         input_shape=(299, 299, 3))
    net.save_weights(str(path))
    return path


def _faces(seed: int, n: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_inception_features_and_fid_from_a_weights_file(weights_file):
    from models.training.metrics import frechet_distance

    inception = InceptionFeatures(weights_file, batch_size=4)
    a = inception(_faces(0, 6))
    assert a.shape == (6, FEATURES) and np.isfinite(a).all()
    assert inception.describe()["weights"] == weights_file.name
    assert len(inception.describe()["sha256"]) == 64
    # The same faces give the same features (the network runs in inference mode).
    np.testing.assert_allclose(inception(_faces(0, 6)), a, rtol=1e-4, atol=1e-4)
    bright = inception([np.full((32, 32, 3), 250, np.uint8)] * 6)
    # A random network's features are small: compare against their own scale.
    scale = float(np.mean(np.sum(a ** 2, axis=1)))
    assert abs(frechet_distance(a, a)) < 1e-3 * scale
    assert frechet_distance(a, bright) > 0.01 * scale


def test_bad_inception_files_are_refused_with_a_reason(tmp_path):
    with pytest.raises(InceptionWeightsError, match="no Inception weights file"):
        InceptionFeatures(tmp_path / "missing.h5")
    junk = tmp_path / "inception.weights.h5"
    junk.write_bytes(b"not an HDF5 file at all")
    with pytest.raises(InceptionWeightsError, match="is not a Keras Inception-v3 weights file"):
        InceptionFeatures(junk)


def test_metrics_report_fid_with_an_inception_file(weights_file, tiny_generator, tmp_path):
    import cv2

    from models.training.metrics import RealSet, evaluate_generator, format_table, scalars

    folder = tmp_path / "real"
    folder.mkdir()
    for i, face in enumerate(_faces(1, 5)):
        cv2.imwrite(str(folder / f"face{i}.png"), face)
    real = RealSet(folder, 5, 32, progress=False)
    inception = InceptionFeatures(weights_file)
    result = evaluate_generator(tiny_generator, real, 5, psi=0.7, progress=False,
                                inception=inception)
    assert result["fid"] is not None and result["fid"] >= 0.0
    assert result["fid_inception"]["weights"] == weights_file.name
    assert "metrics/fid" in scalars(result)
    assert "Keras Inception-v3" in format_table(result)
    # Without a file there is no FID, and the table says how to get one.
    plain = evaluate_generator(tiny_generator, real, 5, psi=0.7, progress=False)
    assert plain["fid"] is None and "--inception" in format_table(plain)


def test_the_metrics_command_refuses_a_bad_inception_file_before_any_work(tiny_bundle_dir,
                                                                           tmp_path):
    from tests.conftest import ligan

    junk = tmp_path / "inception.h5"
    junk.write_text("not weights")
    out = tmp_path / "metrics.json"
    r = ligan("train", "metrics", "--bundle", str(tiny_bundle_dir), "--real", str(tmp_path),
              "--samples", "4", "--inception", str(junk), "--json", str(out), "--no-progress")
    assert r.returncode != 0
    assert "is not a Keras Inception-v3 weights file" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
