"""TFRecord shards: ``data-00000-of-000NN.tfrecord`` with one ``tf.train.Example`` per face.

Features: ``image`` (PNG bytes of the aligned RGB face: lossless, and what
``models/training/data.py`` decodes), ``source`` (the photo's path), and ``age``, ``gender``,
``race`` (int64) when the file name carried them. Why TFRecord: ``tf.data`` reads it
sequentially with large buffered reads and parallel interleaving over shards — no per-file
``open`` on a shared cluster filesystem (the bottleneck of a folder of 70 000 small PNGs) — it
is the trainer's existing input format, and shards let the tasks of a job array write
independently. Shards are written as ``*.tfrecord.tmp`` while the pipeline streams and renamed
with their final count at the end, so a crashed run never leaves a shard the trainer would read.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .items import Item


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB uint8 image."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def to_example(item: Item) -> bytes:
    """The serialized ``tf.train.Example`` of a kept item."""
    import tensorflow as tf

    def _bytes(v: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feature = {"image": _bytes(encode_png(item.image)),
               "source": _bytes(os.fsencode(item.path))}
    for key, value in item.labels.items():
        feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class ShardWriter:
    """Streams examples into shards of ``shard_size`` records under ``out_dir``, named
    ``<prefix>-00000-of-000NN.tfrecord`` once :meth:`close` knows NN."""

    def __init__(self, out_dir: Path, shard_size: int = 2000, prefix: str = "data"):
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        self.out_dir, self.shard_size, self.prefix = Path(out_dir), shard_size, prefix
        self._writer = None
        self._tmp: list[Path] = []
        self._in_shard = 0
        self.count = 0

    def write(self, item: Item) -> None:
        import tensorflow as tf

        if self._writer is None or self._in_shard == self.shard_size:
            self._close_current()
            path = self.out_dir / f"{self.prefix}-{len(self._tmp):05d}.tfrecord.tmp"
            self._tmp.append(path)
            self._writer = tf.io.TFRecordWriter(str(path))
            self._in_shard = 0
        self._writer.write(to_example(item))
        self._in_shard += 1
        self.count += 1

    def _close_current(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[str]:
        """Finish the last shard and give every shard its final name; returns the names."""
        self._close_current()
        names = []
        for i, tmp in enumerate(self._tmp):
            name = f"{self.prefix}-{i:05d}-of-{len(self._tmp):05d}.tfrecord"
            tmp.replace(self.out_dir / name)
            names.append(name)
        return names


def count_records(path: str | os.PathLike) -> int:
    """Number of records in one TFRecord file (reads it through)."""
    import tensorflow as tf

    return sum(1 for _ in tf.data.TFRecordDataset(str(path)))
