"""StyleGAN2 training: augmentation, optimiser, data order, losses, checkpoint and resume."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from models.training.augment import augment, parse_policy
from models.training.data import DataError, training_dataset
from models.training.optim import Adam, lazy_regularization_hyperparams
from tests.conftest import SHARED, identity_bundle, needs_faces, tiny_train_config

LONDON = SHARED / "faces" / "london"


def test_policy_parsing():
    assert parse_policy("color,cutout") == ("color", "cutout")
    assert parse_policy("none") == ()
    with pytest.raises(ValueError, match="unknown augmentation blur"):
        parse_policy("color,blur")


def test_augmentations_keep_shape_and_pass_gradients():
    # Seeded NumPy input: op determinism (enabled by deterministic runs earlier in the same
    # process) refuses TensorFlow random ops without a seed.
    x = tf.Variable(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32))
    rng = tf.random.Generator.from_seed(1)
    with tf.GradientTape() as tape:
        y = augment(x, ("color", "translation", "cutout"), rng)
        total = tf.reduce_sum(y * y)
    assert y.shape == x.shape
    grad = tape.gradient(total, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_translation_shifts_whole_pixels_and_cutout_zeroes_a_square():
    x = tf.reshape(tf.range(2 * 8 * 8 * 1, dtype=tf.float32) + 1, [2, 8, 8, 1])
    rng = tf.random.Generator.from_seed(3)
    y = augment(x, ("translation",), rng).numpy()
    for i in range(2):
        inside = y[i][y[i] != 0]
        assert set(inside.tolist()) <= set(x.numpy()[i].ravel().tolist())  # values moved, not mixed
    c = augment(tf.ones([3, 8, 8, 1]), ("cutout",), rng).numpy()
    assert all(int((c[i] == 0).sum()) <= 16 for i in range(3))  # at most a 4×4 square
    assert any(int((c[i] == 0).sum()) > 0 for i in range(3))


def test_adam_matches_the_reference_update():
    v = tf.Variable([1.0, -2.0])
    opt = Adam([v], lr=0.1, betas=(0.5, 0.9), eps=1e-8)
    ref, m, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t in range(1, 4):
        g = 2 * ref
        opt.apply([tf.constant(2 * v.numpy())])
        m = 0.5 * m + 0.5 * g
        s = 0.9 * s + 0.1 * g * g
        ref = ref - 0.1 / (1 - 0.5 ** t) * m / (np.sqrt(s) / np.sqrt(1 - 0.9 ** t) + 1e-8)
    np.testing.assert_allclose(v.numpy(), ref, rtol=1e-5)


def test_lazy_regularisation_hyperparameters():
    lr, betas = lazy_regularization_hyperparams(0.0025, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert betas[1] == pytest.approx(0.99 ** (16 / 17))


@needs_faces
def test_data_order_is_reproducible_and_resumable():
    full = training_dataset(LONDON, 32, 4, seed=5)
    batches = [b.numpy() for _, b in zip(range(4), full)]
    assert batches[0].shape == (4, 32, 32, 3) and -1 <= batches[0].min() < batches[0].max() <= 1
    again = [b.numpy() for _, b in zip(range(4), training_dataset(LONDON, 32, 4, seed=5))]
    np.testing.assert_array_equal(np.stack(batches), np.stack(again))
    resumed = [b.numpy() for _, b in zip(range(2), training_dataset(LONDON, 32, 4, seed=5,
                                                                     skip_images=8))]
    np.testing.assert_array_equal(np.stack(resumed), np.stack(batches[2:]))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no JPEG or PNG images"):
        training_dataset(tmp_path, 32, 4, seed=0)


def weights(trainer):
    return {f"{net}.{name}": v.numpy() for net in ("G", "D", "G_ema")
            for name, v in getattr(trainer, net).named_variables()}


@needs_faces
def test_training_runs_resumes_bit_for_bit_and_exports_a_bundle(tmp_path):
    from models.bundle import load_bundle
    from models.training.stylegan2 import Trainer

    straight = Trainer(tiny_train_config(), tmp_path / "straight")
    summary = straight.train()
    assert summary == {"nimg": 32, "finished": True, "reason": "finished"}

    first = Trainer(tiny_train_config(total_kimg=0.016), tmp_path / "resumed")
    assert first.train()["nimg"] == 16
    second = Trainer(tiny_train_config(), tmp_path / "resumed")  # same command, more kimg
    assert second.train()["nimg"] == 32
    a, b = weights(straight), weights(second)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    run = tmp_path / "straight"
    ticks = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [t["kimg"] for t in ticks] == [0.008, 0.016, 0.024, 0.032]
    # The discriminator learns to tell the photos from the untrained generator's images.
    assert ticks[-1]["loss/D"] < ticks[0]["loss/D"]
    assert ticks[-1]["scores/real"] - ticks[-1]["scores/fake"] > \
        ticks[0]["scores/real"] - ticks[0]["scores/fake"]
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == \
        ["fakes0000000016.png", "fakes0000000032.png"]
    bundle = load_bundle(run / "bundle", parts=("generator", "discriminator"))
    assert bundle.manifest["training"]["kimg"] == 0.032
    np.testing.assert_array_equal(bundle.generator.w_avg.numpy(), straight.G_ema.w_avg.numpy())
    assert any((run / "tensorboard").iterdir())


@needs_faces
def test_a_run_folder_refuses_other_settings(tmp_path):
    from models.training.stylegan2 import Trainer

    Trainer(tiny_train_config(total_kimg=0.004), tmp_path / "run")
    with pytest.raises(ValueError, match=r"other settings \(resolution: 32 → 64\)"):
        Trainer(tiny_train_config(resolution=64), tmp_path / "run")
    # a folder from before a setting existed was trained with its default, and resumes so
    saved = tmp_path / "run" / "config.json"
    config = json.loads(saved.read_text())
    del config["pl_batch_shrink"]
    saved.write_text(json.dumps(config))
    Trainer(tiny_train_config(total_kimg=0.004), tmp_path / "run")
    saved.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"other settings \(pl_batch_shrink: 2 → 4\)"):
        Trainer(tiny_train_config(pl_batch_shrink=4), tmp_path / "run")


@needs_faces
def test_learning_rates_and_ema_may_change_when_resuming(tmp_path):
    """A schedule by hand: a run resumed with a lower learning rate and a longer EMA uses them
    (and says so in its log); the same step at the old rate lands elsewhere."""
    from models.training.optim import lazy_regularization_hyperparams
    from models.training.stylegan2 import Trainer

    Trainer(tiny_train_config(total_kimg=0.016), tmp_path / "same").train()
    shutil.copytree(tmp_path / "same", tmp_path / "lower")  # one run, resumed two ways
    same = Trainer(tiny_train_config(), tmp_path / "same")
    lower = Trainer(tiny_train_config(g_lr=0.0005, d_lr=0.001, ema_kimg=2.0), tmp_path / "lower")
    assert lower.opt_g.lr == pytest.approx(lazy_regularization_hyperparams(0.0005, (0, 0.99), 1)[0])
    assert lower.opt_d.lr == pytest.approx(lazy_regularization_hyperparams(0.001, (0, 0.99), 1)[0])
    assert same.train()["nimg"] == lower.train()["nimg"] == 32
    a, b = weights(same), weights(lower)
    assert any(not np.array_equal(a[name], b[name]) for name in a)
    assert "learning rates G 0.0005, D 0.001; G's EMA half-life 2 kimg" in \
        (tmp_path / "lower" / "log.txt").read_text()
    # The EMA's half-life ramps up from nothing in a run from scratch, not in one that starts
    # from a trained bundle.
    assert same.ema_beta(0) == pytest.approx(0.0)
    assert same.ema_beta(10_000_000) == pytest.approx(0.5 ** (4 / 1250))
    from_bundle = Trainer(tiny_train_config(resume_from=str(tmp_path / "same" / "bundle")),
                          tmp_path / "from_bundle")
    assert from_bundle.ema_beta(0) == pytest.approx(0.5 ** (4 / 1250))
    with pytest.raises(ValueError, match="learning rates must be positive"):
        tiny_train_config(g_lr=0.0)
    with pytest.raises(ValueError, match="EMA half-life must be positive"):
        tiny_train_config(ema_kimg=-1.0)


@needs_faces
def test_a_run_from_a_bundle_states_the_whole_training_count(tmp_path):
    """A bundle exported by a run that started from another bundle says which one and counts
    both runs' kimg (the campaign resumes the shipped default, then its own snapshots)."""
    from models.bundle import manifest_hash, read_manifest
    from models.training.stylegan2 import Trainer

    Trainer(tiny_train_config(total_kimg=0.016), tmp_path / "first").train()
    first = read_manifest(tmp_path / "first" / "bundle")
    assert "kimg_total" not in first["training"] and "started_from" not in first["training"]
    Trainer(tiny_train_config(total_kimg=0.016, resume_from=str(tmp_path / "first" / "bundle")),
            tmp_path / "second").train()
    second = read_manifest(tmp_path / "second" / "bundle")
    assert second["training"]["kimg"] == 0.016
    assert second["training"]["kimg_total"] == pytest.approx(0.032)
    assert second["training"]["started_from"] == {"bundle": manifest_hash(first), "kimg": 0.016}
    assert f"in second, on top of bundle {manifest_hash(first)[:12]})" in second["description"]
    Trainer(tiny_train_config(total_kimg=0.016, resume_from=str(tmp_path / "second" / "bundle")),
            tmp_path / "third").train()
    assert read_manifest(tmp_path / "third" / "bundle")["training"]["kimg_total"] == \
        pytest.approx(0.048)


@needs_faces
def test_cli_training_checkpoints_on_sigterm_and_resumes(tmp_path):
    import signal
    import subprocess

    from tests.conftest import REPO, ligan, ligan_command, wait_until

    run = tmp_path / "run"
    args = ["train", "stylegan2", "--data", str(LONDON), "--run-dir", str(run),
            "--resolution", "32", "--batch", "4", "--z-dim", "32", "--w-dim", "32",
            "--mapping-layers", "2", "--channel-base", "1024", "--channel-max", "64",
            "--tick-kimg", "0.004", "--snapshot-kimg", "100", "--no-progress"]
    # LIGAN_PRECISION is read, and the command says which precision it chose and why.
    proc = subprocess.Popen([*ligan_command(), *args, "--kimg", "100"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, LIGAN_PRECISION="float32"))
    metrics = run / "metrics.jsonl"
    def ticked() -> bool:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        return bool(metrics.exists() and metrics.read_text().strip())

    wait_until(ticked, 300, "a training tick in metrics.jsonl", interval=0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    found = re.search(r"stopped by SIGTERM at ([0-9.]+) kimg; run the same command again", out)
    assert found, out
    assert "precision float32 (set explicitly)" in err + out
    assert json.loads((run / "config.json").read_text())["precision"] == "float32"
    stopped_kimg = float(found.group(1))
    assert stopped_kimg > 0
    assert any(p.name.startswith("ckpt-") for p in (run / "checkpoints").iterdir())

    r = ligan(*args, "--kimg", f"{stopped_kimg + 0.008:.3f}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("finished:")
    kimgs = [json.loads(line)["kimg"] for line in metrics.read_text().splitlines()]
    assert kimgs == sorted(kimgs) and kimgs[-1] == pytest.approx(stopped_kimg + 0.008, abs=0.004)


def utk_folder(tmp_path, counts):
    """Tiny UTKFace-named images: ``counts`` maps race code → how many; the image's grey level
    encodes the race so the sampled stream can be read back."""
    from PIL import Image

    folder = tmp_path / "utk"
    folder.mkdir()
    for race, n in counts.items():
        for i in range(n):
            Image.new("RGB", (8, 8), (race * 60,) * 3).save(
                folder / f"30_0_{race}_2017010{i:04d}.jpg.chip.png")
    return folder


def test_balance_weights_even_out_groups():
    from models.training.balance import balance_weights

    files = ([f"30_0_0_{i}.png" for i in range(90)] + [f"30_1_2_{i}.png" for i in range(10)])
    w, report = balance_weights(files, "ethnicity", 1.0)
    assert w.sum() == pytest.approx(1.0)
    assert report["data_share"] == {"asian": 0.1, "white": 0.9}
    assert report["sampled_share"] == {"asian": 0.5, "white": 0.5}
    _, half = balance_weights(files, "ethnicity", 0.5)
    assert half["sampled_share"]["asian"] == pytest.approx(0.25, abs=1e-3)  # √.1 / (√.1 + √.9)
    _, none = balance_weights(files, "ethnicity", 0.0)
    assert none["sampled_share"] == none["data_share"]
    assert balance_weights(files, "gender", 1.0)[1]["sampled_share"] == {"female": 0.5,
                                                                          "male": 0.5}
    # A stray unlabelled name (UTKFace has a few) is left out; an unlabelled folder is an error.
    w, report = balance_weights(files + ["39_1_2017.jpg"], "ethnicity", 1.0)
    assert w[-1] == 0 and report["unlabelled"] == ["39_1_2017.jpg"]
    assert report["sampled_share"] == {"asian": 0.5, "white": 0.5}
    with pytest.raises(ValueError, match="2 of 102 have none, e.g. 'a.jpg'"):
        balance_weights(files + ["a.jpg", "b.jpg"], "ethnicity", 1.0)
    with pytest.raises(ValueError, match="balance power must be from 0 to 1"):
        balance_weights(files, "ethnicity", 2.0)
    with pytest.raises(ValueError, match="cannot balance by 'hair'"):
        balance_weights(files, "hair", 1.0)


def test_balanced_stream_draws_groups_evenly_and_resumes(tmp_path):
    from models.training.balance import balance_weights
    from models.training.data import list_images

    folder = utk_folder(tmp_path, {0: 18, 2: 2})
    w, _ = balance_weights(list_images(folder), "ethnicity", 1.0)

    def stream(skip=0, n=100):
        ds = training_dataset(folder, 8, 4, seed=3, skip_images=skip, mirror=False, weights=w)
        return np.stack([b.numpy() for _, b in zip(range(n), ds)])

    batches = stream()
    asian = np.mean(batches[:, :, 0, 0, 0] > -0.9)  # race 2 is grey, race 0 black
    assert 0.4 < asian < 0.6  # 10 % of the files, half of what the networks see
    np.testing.assert_array_equal(stream(skip=8, n=10), batches[2:12])
    with pytest.raises(DataError, match="2 sampling weights for 20 images"):
        training_dataset(folder, 8, 4, seed=3, weights=w[:2])


@needs_faces
def test_balancing_needs_labelled_file_names(tmp_path):
    from models.training.stylegan2 import Trainer

    with pytest.raises(ValueError, match="needs UTKFace labels in the file names"):
        Trainer(tiny_train_config(balance="ethnicity"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="cannot balance by 'hair'"):
        tiny_train_config(balance="hair")


@needs_faces
def test_a_wider_network_starts_from_a_narrower_bundle(tmp_path, tiny_bundle_dir):
    """--widen: the narrow weights fill the leading channels and the new ones start near silent,
    so the widened generator first draws what the narrow one drew and the discriminator scores
    alike; without it the shapes are refused with a hint."""
    from models.bundle import BundleShapeError, load_bundle, widen_weights
    from models.training.stylegan2 import Trainer

    narrow = load_bundle(tiny_bundle_dir, parts=("generator", "discriminator"))
    wide_cfg = dict(channel_base=2048, channel_max=128)
    with pytest.raises(BundleShapeError, match="--widen"):
        Trainer(tiny_train_config(resume_from=str(tiny_bundle_dir), **wide_cfg), tmp_path / "a")
    with pytest.raises(ValueError, match="needs the bundle to start from"):
        tiny_train_config(resume_widen=True)
    wide = Trainer(tiny_train_config(resume_from=str(tiny_bundle_dir), resume_widen=True,
                                     **wide_cfg), tmp_path / "b")
    shapes = {n: tuple(v.shape) for n, v in wide.G.named_variables()}
    narrow_shapes = {n: tuple(v.shape) for n, v in narrow.generator.named_variables()}
    assert any(shapes[n] != narrow_shapes[n] for n in shapes)  # it really is wider
    ws = narrow.generator.map_compiled(np.random.default_rng(0).standard_normal(
        (4, 32)).astype(np.float32)).numpy()
    before = narrow.generator.synthesize(ws).numpy()
    after = wide.G.synthesize(ws).numpy()
    assert np.abs(after - before).max() < 0.05 * np.abs(before).max()
    assert np.abs(after - before).mean() < 0.01 * np.abs(before).mean() + 1e-3
    np.testing.assert_allclose(wide.D(tf.constant(before)).numpy(),
                               narrow.discriminator(tf.constant(before)).numpy(),
                               rtol=0.05, atol=0.05)
    # a narrower target, or another depth, is refused by name
    with pytest.raises(BundleShapeError, match="does not fit inside"):
        widen_weights(narrow.generator, wide.G, "test")
    with pytest.raises(BundleShapeError, match="differ in more than width"):
        widen_weights(wide.G, wide.D, "test")
    assert wide.train()["finished"]  # and it trains


@needs_faces
def test_a_feature_discriminator_reads_faces_through_the_frozen_identity_network(
        tmp_path, tiny_bundle_dir):
    """--feature-d: a head on the identity network's features, standardised on real faces when
    it starts, learns real from generated and its loss reaches the generator; the network stays
    as loaded; it may be switched on when a run is resumed, and its head (with its
    standardisation) is checkpointed from then on."""
    from models.bundle import BundleFileMissingError
    from models.training.stylegan2 import Trainer

    bundle = identity_bundle(tmp_path, tiny_bundle_dir)
    run = tmp_path / "run"
    assert Trainer(tiny_train_config(total_kimg=0.016), run).train()["nimg"] == 16
    trainer = Trainer(tiny_train_config(total_kimg=0.064, feature_d=str(bundle)), run)
    net_before = [v.numpy().copy() for v in trainer.FD.net.trainable_variables]
    head_before = [v.numpy().copy() for v in trainer.FD.trainable_variables]
    g_feature_grad = _feature_gradient_reaches_the_generator(trainer)
    assert g_feature_grad > 0
    assert not trainer.FD.calibrated
    assert trainer.train()["nimg"] == 64
    assert trainer.FD.calibrated  # its inputs standardised on real faces when it started
    assert np.abs(trainer.FD.head.mean.numpy()).max() > 0
    assert "inputs standardised on 256 real faces" in (run / "log.txt").read_text()

    for a, b in zip(net_before, trainer.FD.net.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())  # frozen
    assert any(np.abs(a - b.numpy()).max() > 0
               for a, b in zip(head_before, trainer.FD.trainable_variables))
    ticks = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with_head = [t for t in ticks if "loss/D_feature" in t]
    assert [t["kimg"] for t in with_head] == [0.024, 0.032, 0.04, 0.048, 0.056, 0.064]
    assert all("loss/G_feature" in t for t in with_head)
    # the head learns to tell the photos from the untrained generator's faces
    gap = [t["scores/feature_real"] - t["scores/feature_fake"] for t in with_head]
    assert gap[-1] > gap[0]

    resumed = Trainer(tiny_train_config(total_kimg=0.064, feature_d=str(bundle)), run)
    resumed.manager.restore_or_initialize()
    assert resumed.FD.calibrated
    for (name, a), (_, b) in zip(trainer.FD.head.named_variables(),
                                 resumed.FD.head.named_variables()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)

    with pytest.raises(ValueError, match="reads 64-px faces, this run trains at 32 px"):
        Trainer(tiny_train_config(feature_d=str(identity_bundle(tmp_path, tiny_bundle_dir, 64))),
                tmp_path / "other")
    with pytest.raises(BundleFileMissingError, match="no identity network"):
        Trainer(tiny_train_config(feature_d=str(tiny_bundle_dir)), tmp_path / "other2")
    with pytest.raises(ValueError, match="weight must be ≥ 0"):
        tiny_train_config(feature_d=str(bundle), feature_d_weight=-1)


@needs_faces
def test_the_spectral_loss_pulls_the_generated_spectrum_toward_the_real_one(tmp_path):
    """--spectral-weight: 0 for batches with the same spectrum, larger the more a batch's fine
    detail differs, a gradient for the fake batch only; the trainer logs it, and it may be
    switched on when a run is resumed."""
    from models.training.spectrum import radial_power, spectral_loss
    from models.training.stylegan2 import Trainer

    rng = np.random.default_rng(0)
    smooth = tf.constant(np.cumsum(np.cumsum(rng.normal(size=(8, 32, 32, 3)), 1), 2)
                         / 30, tf.float32)
    target = radial_power(smooth)
    assert target.shape == (15,)
    assert float(spectral_loss(smooth, target)) == pytest.approx(0.0, abs=1e-9)
    noisy = smooth + tf.constant(rng.normal(0, 0.05, (8, 32, 32, 3)), tf.float32)
    noisier = smooth + tf.constant(rng.normal(0, 0.2, (8, 32, 32, 3)), tf.float32)
    assert 0 < float(spectral_loss(noisy, target)) < float(spectral_loss(noisier, target))
    fake, target = tf.Variable(noisier), tf.Variable(target)
    with tf.GradientTape() as tape:
        loss = spectral_loss(fake, target)
    grad_fake, grad_target = tape.gradient(loss, [fake, target])
    assert float(tf.reduce_max(tf.abs(grad_fake))) > 0 and grad_target is None
    with pytest.raises(ValueError, match="square images"):
        radial_power(tf.zeros([2, 32, 16, 3]))

    run = tmp_path / "run"
    assert Trainer(tiny_train_config(total_kimg=0.016), run).train()["nimg"] == 16
    resumed = Trainer(tiny_train_config(total_kimg=0.032, spectral_weight=1.0), run)
    assert resumed.train()["nimg"] == 32
    ticks = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "loss/G_spectral" not in ticks[0]
    assert ticks[-1]["kimg"] == 0.032 and ticks[-1]["loss/G_spectral"] > 0
    assert resumed.real_power_steps.numpy() == 4  # its target averaged the 4 real batches
    assert resumed.real_power.numpy().min() > 0
    with pytest.raises(ValueError, match="spectral loss's weight must be ≥ 0"):
        tiny_train_config(spectral_weight=-0.5)


def _feature_gradient_reaches_the_generator(trainer) -> float:
    """Norm of the gradient of the feature discriminator's generator loss on G's weights."""
    with tf.GradientTape() as tape:
        ws, _ = trainer._sample_ws(4)
        loss = tf.reduce_mean(tf.nn.softplus(-trainer._fd_logits(trainer._render(ws))))
    grads = tape.gradient(loss, trainer.G.trainable_variables)
    return float(tf.linalg.global_norm([g for g in grads if g is not None]))
