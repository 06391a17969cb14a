"""A conditional generator: labels from UTKFace names, drawn from z, and switched on mid-run."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import TRAINING_FACES, needs_faces, tiny_train_config

LAYOUT_WIDTH = 2 + 8 + 5  # gender, age group (decades), ethnicity


def test_labels_come_from_utkface_names_and_their_shares():
    from models.conditioning import file_labels, group_shares, label_groups, label_vector

    assert label_groups("utkface") == (2, 8, 5)
    vec = label_vector("utkface", {"gender": "female", "age_group": "30-39", "ethnicity": "asian"})
    assert vec.shape == (LAYOUT_WIDTH,) and vec.sum() == 3
    assert np.flatnonzero(vec).tolist() == [1, 2 + 3, 10 + 2]
    files = ["34_1_2_20170101.jpg", "5_0_0_20170102.jpg", "71_0_3_20170103.jpg"] * 40
    labels = file_labels(files + ["39_1_2017.jpg"], "utkface")  # a stray malformed name
    np.testing.assert_array_equal(labels[0], vec)
    assert labels[-1].sum() == 0  # no labels: all zeros
    shares = group_shares(labels, (2, 8, 5))
    np.testing.assert_allclose(shares[:2], [2 / 3, 1 / 3], atol=1e-6)  # male, female
    np.testing.assert_allclose(shares[2:10][[0, 3, 7]], [1 / 3] * 3, atol=1e-6)
    assert shares[10 + 1] == 0  # no black faces among these files
    with pytest.raises(ValueError, match="2 of 122 files have none, e.g. 'a.jpg'"):
        file_labels(files + ["a.jpg", "b.jpg"], "utkface")
    with pytest.raises(ValueError, match="unknown label layout 'celeba'"):
        file_labels(files, "celeba")
    with pytest.raises(ValueError, match=r"missing: ethnicity; unknown: hair"):
        label_vector("utkface", {"gender": "male", "age_group": "0-9", "hair": "blond"})
    with pytest.raises(ValueError, match="ethnicity 'martian' is not one of"):
        label_vector("utkface", {"gender": "male", "age_group": "0-9", "ethnicity": "martian"})


def test_a_conditional_generator_draws_labels_from_z_in_the_prior_shares():
    """Without labels, every z gets the same groups each time, in the prior's shares; given
    labels change the face; a wrong label shape is a clear error."""
    from models.stylegan2 import Generator, GeneratorConfig
    from models.stylegan2.config import ConfigError

    cfg = GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256,
                          channel_max=16, label_groups=(2, 8, 5))
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "label_groups" not in GeneratorConfig(resolution=32).to_dict()  # as before
    g = Generator(cfg, seed=1)
    prior = np.concatenate([[0.8, 0.2], np.full(8, 1 / 8), [0.5, 0.1, 0.1, 0.2, 0.1]])
    g.mapping.label_prior.assign(prior.astype(np.float32))
    z = np.random.default_rng(0).standard_normal((4000, 16)).astype(np.float32)
    labels = g.mapping.labels_from_z(z).numpy()
    assert labels.shape == (4000, LAYOUT_WIDTH)
    np.testing.assert_array_equal(labels.reshape(4000, -1).sum(axis=1), np.full(4000, 3))
    np.testing.assert_allclose(labels.mean(axis=0), prior, atol=0.03)
    np.testing.assert_array_equal(g.mapping.labels_from_z(z[:7]).numpy(), labels[:7])

    one = z[:2]
    drawn = g.map_compiled(one).numpy()
    np.testing.assert_allclose(g.map_compiled(one, labels=labels[:2]).numpy(), drawn, atol=1e-6)
    other = labels[:2].copy()
    other[:, :2] = other[:, 1::-1]  # the other gender
    assert np.abs(g.map_compiled(one, labels=other).numpy() - drawn).max() > 1e-3
    with pytest.raises(ValueError, match=r"labels must be \[2, 15\] for this generator"):
        g.map_compiled(one, labels=np.zeros((2, 3), np.float32))
    with pytest.raises(ConfigError, match="label_groups must be counts of at least 2"):
        GeneratorConfig(resolution=32, label_groups=(2, 1))


def test_labels_are_drawn_in_the_prior_shares_within_the_allowed_groups():
    from models.conditioning import LAYOUTS, draw_labels

    traits = LAYOUTS["utkface"]
    prior = np.concatenate([[0.6, 0.4], np.full(8, 1 / 8), [0.5, 0.2, 0.0, 0.2, 0.1]])
    rng = np.random.default_rng(0)
    free = draw_labels(traits, prior, 4000, rng)
    np.testing.assert_allclose(free.mean(axis=0), prior, atol=0.03)
    women = draw_labels(traits, prior, 4000, rng, {"gender": {"female"},
                                                   "ethnicity": {"white", "black"}})
    assert women[:, 1].all() and not women[:, 0].any()
    np.testing.assert_allclose(women[:, 10:12].mean(axis=0), [5 / 7, 2 / 7], atol=0.03)
    asian = draw_labels(traits, prior, 100, rng, {"ethnicity": {"asian"}})  # none in the data
    assert asian[:, 12].all()
    with pytest.raises(ValueError, match="these labels have no trait hair"):
        draw_labels(traits, prior, 1, rng, {"hair": {"blond"}})
    with pytest.raises(ValueError, match="ethnicity martian is not one of"):
        draw_labels(traits, prior, 1, rng, {"ethnicity": {"martian"}})


def _utkface_named_copies(tmp_path, n=16):
    """``n`` shared photos under UTKFace-style names with varied labels."""
    photos = sorted(p for p in TRAINING_FACES.rglob("*")
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    folder = tmp_path / "utk"
    folder.mkdir()
    for i, photo in enumerate(photos):
        shutil.copy(photo, folder / f"{18 + 4 * i}_{i % 2}_{i % 5}_2017010{i:04d}{photo.suffix}")
    return folder


@needs_faces
def test_a_conditional_run_starts_from_an_unconditional_bundle_and_learns_its_labels(tmp_path):
    """--condition with --resume-from an unconditional bundle: the first faces are nearly the
    bundle's, the stream carries every image's labels, the label weights learn, and the
    exported bundle is conditional, with the data's shares as its prior."""
    from models.attributes.filter import generate_matching, parse_filter
    from models.attributes.heads import ETHNICITIES
    from models.attributes.model import (ATTRIBUTES_PART, AttributeConfig, AttributeModel,
                                         attribute_part_config)
    from models.bundle import add_part, load_bundle, module_arrays
    from models.conditioning import file_labels, group_shares
    from models.training.data import DataError, list_images, training_dataset
    from models.training.stylegan2 import Trainer

    grey = tmp_path / "grey"  # each image's grey level encodes its ethnicity code
    grey.mkdir()
    for i in range(20):
        Image.new("RGB", (8, 8), ((i % 5) * 60,) * 3).save(grey / f"30_0_{i % 5}_2017{i:04d}.png")
    grey_labels = file_labels(list_images(grey), "utkface")
    stream = training_dataset(grey, 8, 4, seed=0, mirror=False, labels=grey_labels)
    for images, rows in stream.take(10):
        assert images.shape == (4, 8, 8, 3) and rows.shape == (4, LAYOUT_WIDTH)
        code = np.rint((images[:, 0, 0, 0].numpy() + 1) * 127.5 / 60)
        np.testing.assert_array_equal(np.argmax(rows[:, 10:].numpy(), axis=1), code)
    with pytest.raises(DataError, match="3 label rows for 20 images"):
        training_dataset(grey, 8, 4, seed=0, labels=grey_labels[:3])

    folder = _utkface_named_copies(tmp_path)
    labels = file_labels(list_images(folder), "utkface")
    images, batch_labels = next(iter(training_dataset(folder, 32, 4, 0, labels=labels)))
    Trainer(tiny_train_config(data=str(folder), total_kimg=0.008), tmp_path / "plain").train()
    plain = load_bundle(tmp_path / "plain" / "bundle", parts=("generator", "discriminator"))
    run = tmp_path / "conditional"
    trainer = Trainer(tiny_train_config(data=str(folder), total_kimg=0.016,
                                        conditioning="utkface",
                                        resume_from=str(tmp_path / "plain" / "bundle")), run)
    np.testing.assert_allclose(trainer.G.mapping.label_prior.numpy(),
                               group_shares(labels, (2, 8, 5)), atol=1e-6)
    z = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    before = plain.generator.synthesize(plain.generator.map_compiled(z), reproducible=False)
    after = trainer.G_ema.synthesize(trainer.G_ema.map_compiled(z), reproducible=False)
    scale = float(tf.reduce_max(tf.abs(before)))
    assert float(tf.reduce_max(tf.abs(after - before))) < 0.03 * scale
    real = images.numpy()
    np.testing.assert_allclose(trainer.D(real, labels=batch_labels).numpy(),
                               plain.discriminator(real).numpy(), atol=0.02)
    cmap = trainer.D.epilogue.cmap.weight.numpy().copy()
    label_fc = trainer.G.mapping.label_fc.weight.numpy().copy()

    assert trainer.train()["nimg"] == 16
    assert np.abs(trainer.D.epilogue.cmap.weight.numpy() - cmap).max() > 0  # it learns
    # The label path learns at the full rate: in 4 steps its weights move by a good part of
    # their near-silent size (inside the mapping's 0.01× rate they would move by 1 %).
    moved = trainer.G.mapping.label_fc.weight.numpy() - label_fc
    assert np.sqrt(np.mean(moved ** 2)) > 0.3 * np.sqrt(np.mean(label_fc ** 2))
    bundle = load_bundle(run / "bundle", parts=("generator", "discriminator"))
    assert bundle.manifest["parts"]["generator"]["config"]["label_groups"] == [2, 8, 5]
    assert bundle.discriminator.cfg.label_groups == (2, 8, 5)
    np.testing.assert_allclose(bundle.generator.mapping.label_prior.numpy(),
                               group_shares(labels, (2, 8, 5)), atol=1e-6)
    shares = group_shares(labels, (2, 8, 5))
    assert f"(male {shares[0]:.3f}, female {shares[1]:.3f}, 0-9 " in (run / "log.txt").read_text()
    assert bundle.manifest["labels"]["traits"][2] == {"trait": "ethnicity",
                                                      "groups": list(ETHNICITIES)}

    # Filtering faces by attributes: the generator draws the fixed traits through its labels.
    cfg = AttributeConfig(resolution=32, work_resolution=16, channel_base=256, channel_max=32,
                          features=32)
    add_part(run / "bundle", ATTRIBUTES_PART, module_arrays(AttributeModel(cfg, seed=1)),
             attribute_part_config(cfg, training={"note": "test: untrained"}))
    bundle = load_bundle(run / "bundle")
    g, asked = bundle.generator, []
    real_map = g.map_compiled

    def spy(z, *args, labels=None, **kwargs):
        asked.append(labels)
        return real_map(z, *args, labels=labels, **kwargs)

    g.map_compiled = spy
    result = generate_matching(bundle, parse_filter("women, 30-49"), 1, guided=False,
                               max_candidates=3)
    assert result.labelled == ["gender in {female}", "age_group in {30-39, 40-49}"]
    drawn = np.concatenate(asked)
    assert drawn[:, 1].all() and drawn[:, 2 + 3:2 + 5].sum(axis=1).all()
    with pytest.raises(ValueError, match=r"other settings \(conditioning: 'utkface' → ''\)"):
        Trainer(tiny_train_config(data=str(folder),
                                  resume_from=str(tmp_path / "plain" / "bundle")), run)
    with pytest.raises(ValueError, match="1 of 1 files have none"):
        Trainer(tiny_train_config(conditioning="utkface", data=str(_one_unlabelled(tmp_path))),
                tmp_path / "unlabelled")


def _one_unlabelled(tmp_path):
    folder = tmp_path / "unlabelled_photos"
    folder.mkdir()
    photo = next(p for p in TRAINING_FACES.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    shutil.copy(photo, folder / f"face{photo.suffix}")
    return folder


def test_the_label_reader_s_loss_is_the_probe_s_cross_entropy_against_the_labels():
    from models.attributes.heads import CLASS_HEADS
    from models.attributes.identity_probe import TraitProbe
    from models.conditioning import LAYOUTS
    from models.training.label_loss import LabelReader

    rng = np.random.default_rng(0)
    traits = list(LAYOUTS["utkface"])
    coef = {t: rng.standard_normal((len(CLASS_HEADS[t]), 128)) for t in traits}
    intercept = {t: rng.standard_normal(len(CLASS_HEADS[t])) for t in traits}
    reader = LabelReader(TraitProbe(coef, intercept), "utkface")
    emb = rng.standard_normal((6, 128)).astype(np.float32) * 0.1
    labels = np.zeros((6, LAYOUT_WIDTH), np.float32)
    start, want, agree = 0, [], {}
    for t in traits:
        k = len(CLASS_HEADS[t])
        cls = rng.integers(0, k, 6)
        labels[np.arange(6), start + cls] = 1
        logits = emb.astype(np.float64) @ coef[t].T + intercept[t]
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        want.append(-log_p[np.arange(6), cls].mean())
        agree[t] = float((logits.argmax(axis=1) == cls).mean())
        start += k
    loss, agreement = reader.loss(tf.constant(emb), tf.constant(labels))
    assert float(loss) == pytest.approx(np.mean(want), rel=1e-5)
    assert {t: float(v) for t, v in agreement.items()} == pytest.approx(agree)
    del coef["ethnicity"], intercept["ethnicity"]
    with pytest.raises(ValueError, match="does not read ethnicity"):
        LabelReader(TraitProbe(coef, intercept), "utkface")


@needs_faces
def test_the_label_loss_teaches_the_generator_what_the_probe_reads(tmp_path, tiny_bundle_dir):
    """--label-loss: switched on when a conditional run resumes, it reads the generated faces
    with the feature discriminator's network and its bundle's trait probe, its gradient reaches
    the generator's label path, and the log shows it with the share of faces read as labelled;
    it is refused without labels, without the feature discriminator, or without a probe."""
    from models.training.stylegan2 import Trainer
    from tests.conftest import identity_bundle

    folder = _utkface_named_copies(tmp_path)
    reader_bundle = identity_bundle(tmp_path, tiny_bundle_dir, probe=True)
    run = tmp_path / "run"
    settings = dict(data=str(folder), conditioning="utkface", feature_d=str(reader_bundle))
    Trainer(tiny_train_config(total_kimg=0.008, **settings), run).train()
    trainer = Trainer(tiny_train_config(total_kimg=0.016, label_loss_weight=2.0,
                                        metrics_real=str(folder), metrics_samples=8,
                                        **settings), run)
    trainer.manager.restore_or_initialize()
    labels = np.zeros((4, LAYOUT_WIDTH), np.float32)
    labels[:, [1, 4, 2 + 8 + 3]] = 1  # women, 20-29, asian
    z = tf.constant(np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32))
    with tf.GradientTape() as tape:
        faces = trainer.G.synthesize(trainer.G.mapping(z, tf.constant(labels)))
        loss, _ = trainer.label_reader.loss(trainer.FD.net(faces), tf.constant(labels))
    grad = tape.gradient(loss, trainer.G.mapping.label_fc.weight)
    assert float(loss) > 0 and float(tf.reduce_max(tf.abs(grad))) > 0
    assert trainer.train()["nimg"] == 16
    log = (run / "log.txt").read_text()
    assert "label loss weight 2.0 (faces read by the trait probe of" in log
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ticks = [t for t in lines if not t.get("snapshot")]
    assert "loss/G_label" not in ticks[0] and ticks[-1]["kimg"] == 0.016
    assert ticks[-1]["loss/G_label"] > 0
    assert all(0 <= ticks[-1][f"labels_read/{t}"] <= 1
               for t in ("gender", "age_group", "ethnicity"))
    # Its snapshot reads how many faces dlib's probe sees as the group they were drawn with.
    snapshot = [t for t in lines if t.get("snapshot")][-1]
    assert 0 <= snapshot["metrics/gender_label_agreement"] <= 1

    with pytest.raises(ValueError, match="label loss's weight must be ≥ 0"):
        tiny_train_config(label_loss_weight=-1, **settings)
    with pytest.raises(ValueError, match="needs a conditional run"):
        tiny_train_config(label_loss_weight=1, feature_d=str(reader_bundle))
    with pytest.raises(ValueError, match="needs a conditional run"):
        tiny_train_config(label_loss_weight=1, conditioning="utkface")
    no_probe = identity_bundle(tmp_path, tiny_bundle_dir)
    with pytest.raises(ValueError, match="has none"):
        Trainer(tiny_train_config(label_loss_weight=1, data=str(folder), conditioning="utkface",
                                  feature_d=str(no_probe)), tmp_path / "other")
