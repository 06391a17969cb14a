"""Training images as a deterministic, resumable ``tf.data`` pipeline.

Sources: a folder of images (searched recursively for JPEG/PNG) or TFRecord shards written by
the dataset pipeline (feature ``image``: encoded JPEG/PNG bytes). The order is a pure function
of the seed and the position, so a resumed run continues with exactly the images it would have
seen: resuming skips file *names* (cheap), not decoded images.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataError(ValueError):
    """The training data cannot be used; the message says why."""


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder``, sorted, so the list is the same on every machine."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"training data folder {root} does not exist")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no JPEG or PNG images under {root}")
    return files


def list_tfrecords(folder: str | os.PathLike) -> list[str]:
    files = sorted(str(p) for p in Path(folder).glob("*.tfrecord"))
    if not files:
        raise DataError(f"no *.tfrecord shards in {folder}")
    return files


def source_files(source: str | os.PathLike) -> tuple[list[str], bool]:
    """The files of a training source and whether they are TFRecord shards (else images)."""
    source = Path(source)
    if source.is_dir() and any(source.glob("*.tfrecord")):
        return list_tfrecords(source), True
    return list_images(source), False


def _decode(data: tf.Tensor, resolution: int) -> tf.Tensor:
    img = tf.io.decode_image(data, channels=3, expand_animations=False)
    img = tf.image.resize(tf.cast(img, tf.float32), [resolution, resolution], method="area",
                          antialias=True)
    img.set_shape([resolution, resolution, 3])
    return img / 127.5 - 1.0


def _shuffled_positions(files: list[str], records: bool, seed: int,
                        skip_images: int) -> tf.data.Dataset:
    """(position, file name or encoded image) in shuffled epochs, from ``skip_images`` on."""
    if records:
        feature = {"image": tf.io.FixedLenFeature([], tf.string)}
        items = tf.data.TFRecordDataset(files).map(
            lambda r: tf.io.parse_single_example(r, feature)["image"])
        count = None
    else:
        items = tf.data.Dataset.from_tensor_slices(files)
        count = len(files)
    ds = items.shuffle(count or 10_000, seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.enumerate().skip(skip_images)


def _weighted_positions(files: list[str], records: bool, weights: np.ndarray, seed: int,
                        skip_images: int) -> tf.data.Dataset:
    """(position, file name), each drawn with ``weights`` by a hash of seed and position."""
    if records:
        raise DataError("weighted (balanced) sampling needs an image folder with labelled "
                        "file names, not TFRecord shards")
    if len(weights) != len(files):
        raise DataError(f"{len(weights)} sampling weights for {len(files)} images")
    logits = tf.constant(np.log(np.maximum(weights, 1e-30))[None], tf.float32)
    names = tf.constant(files)

    def pick(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        draw = tf.random.stateless_categorical(
            logits, 1, seed=tf.stack([tf.constant(seed, tf.int64), index]))[0, 0]
        return index, tf.gather(names, draw)

    return tf.data.Dataset.range(skip_images, 2 ** 62).map(pick)


def training_dataset(source: str | os.PathLike, resolution: int, batch_size: int, seed: int,
                     skip_images: int = 0, mirror: bool = True,
                     weights: np.ndarray | None = None,
                     labels: np.ndarray | None = None) -> tf.data.Dataset:
    """Endless batches of [batch, resolution, resolution, 3] float32 images in [-1, 1].

    ``skip_images`` resumes the stream where a run stopped. ``mirror`` flips half the images
    horizontally (chosen by a hash of seed and position, so it is reproducible too).
    ``weights`` (one per file of an image folder, in ``list_images`` order): draw each position's
    image with these probabilities (with replacement, by a hash of seed and position) instead
    of shuffled epochs — see ``models.training.balance``.
    ``labels`` (one row per file of an image folder, in ``list_images`` order): batches are
    (images, labels [batch, label dims]) pairs — see ``models.conditioning``.
    """
    files, records = source_files(source)
    if labels is not None:
        if records:
            raise DataError("labelled (conditional) training needs an image folder with "
                            "labelled file names, not TFRecord shards")
        if len(labels) != len(files):
            raise DataError(f"{len(labels)} label rows for {len(files)} images")
        label_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(files),
                                                tf.range(len(files), dtype=tf.int64)), -1)
        label_rows = tf.constant(np.asarray(labels, np.float32))
    if weights is not None:
        ds = _weighted_positions(files, records, weights, seed, skip_images)
    else:
        ds = _shuffled_positions(files, records, seed, skip_images)

    def load(index: tf.Tensor, item: tf.Tensor):
        data = item if records else tf.io.read_file(item)
        img = _decode(data, resolution)
        if mirror:
            flip = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]))
            img = tf.cond(flip < 0.5, lambda: img[:, ::-1, :], lambda: img)
        if labels is not None:
            return img, tf.gather(label_rows, label_of.lookup(item))
        return img

    options = tf.data.Options()
    options.deterministic = True
    return (ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
            .with_options(options))
