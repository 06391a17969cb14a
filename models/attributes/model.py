"""The attribute classifier: a small residual CNN with one head per attribute group.

Input: aligned faces [N, R, R, 3] in [-1, 1] at the bundle's resolution R; they are resized
to the model's working resolution (64 by default: attributes such as beard, glasses or age are
visible at 64 px, and the CPU cost of a 256-px network would make guided sampling and direction
fitting slow). The trunk (:mod:`models.face_trunk`: residual blocks down to 4×4 and a dense
layer) is followed by one dense head per group: softmax heads for ``age_group``, ``gender``,
``ethnicity`` and one sigmoid output per CelebA column in
:data:`~models.attributes.heads.CELEBA_HEADS`.

Weights live in the bundle's ``attributes`` part next to the fitted W directions (arrays whose
names start with ``direction.``; see :mod:`models.attributes.directions`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from models.attributes.heads import CELEBA_HEADS, CLASS_HEADS, HeadOutputs
from models.face_trunk import TrunkConfig, add_trunk, face_batch, trunk_features
from models.stylegan2.layers import Dense, NamedModule

ATTRIBUTES_PART = "attributes"
DIRECTION_PREFIX = "direction."


@dataclasses.dataclass(frozen=True)
class AttributeConfig(TrunkConfig):
    what: ClassVar[str] = "attribute model"


class AttributeModel(NamedModule):
    """Aligned faces → :class:`HeadOutputs` (``logits`` gives the raw per-head logits)."""

    def __init__(self, cfg: AttributeConfig, seed: int = 0) -> None:
        super().__init__("attributes")
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        add_trunk(self, cfg, rng)
        self.heads = {name: self.add_child(f"head_{name}", Dense(f"head_{name}", cfg.features,
                                                                 len(classes), rng))
                      for name, classes in CLASS_HEADS.items()}
        self.heads["celeba"] = self.add_child("head_celeba", Dense(
            "head_celeba", cfg.features, len(CELEBA_HEADS), rng))
        self._predict = None
        # dtype of the convolutions (models.precision); logits come out float32 either way.
        self.compute_dtype = tf.float32

    def logits(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = trunk_features(self, images, self.compute_dtype)
        return {name: tf.cast(head(x), tf.float32) for name, head in self.heads.items()}

    def probabilities(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.logits(images)
        probs = {k: tf.nn.softmax(v) for k, v in out.items() if k in CLASS_HEADS}
        probs["celeba"] = tf.sigmoid(out["celeba"])
        return probs

    def predict(self, images: np.ndarray | tf.Tensor, batch_size: int = 64) -> HeadOutputs:
        """Probabilities for float images in [-1, 1] of any square size, in batches."""
        if self._predict is None:
            self._predict = tf.function(self.probabilities, input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.float32)], reduce_retracing=True)
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape.rank != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, R, R, 3], got {list(images.shape)}")
        parts = [self._predict(images[i:i + batch_size])
                 for i in range(0, int(images.shape[0]), batch_size)]
        if not parts:
            empty = {k: np.zeros((0, len(v)), np.float32) for k, v in CLASS_HEADS.items()}
            return HeadOutputs(empty, np.zeros((0, len(CELEBA_HEADS)), np.float32))
        merged = {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}
        celeba = merged.pop("celeba")
        return HeadOutputs(merged, celeba)


def load_attribute_model(bundle) -> AttributeModel:
    """The bundle's attribute model, built once per loaded bundle (cached on the object)."""
    from models.bundle import BundleFileMissingError, assign_weights

    cached = bundle.__dict__.get("_attribute_model")
    if cached is not None:
        return cached
    if not bundle.has_part(ATTRIBUTES_PART):
        raise BundleFileMissingError(
            f"bundle {bundle.path} has no attribute model; train one with 'ligan train "
            f"attributes --bundle {bundle.path} --run-dir RUN'")
    config = bundle.manifest["parts"][ATTRIBUTES_PART]["config"]
    model = AttributeModel(AttributeConfig(**config["model"]))
    arrays = {k: v for k, v in bundle.part_arrays(ATTRIBUTES_PART).items()
              if not k.startswith(DIRECTION_PREFIX)}
    assign_weights(model, arrays, f"bundle {bundle.path}, attributes")
    bundle.__dict__["_attribute_model"] = model
    return model


def predict_attributes(bundle, images: np.ndarray, batch_size: int = 64,
                       head_pose: bool = False) -> list[dict]:
    """Per face, every trait's label and probabilities (see :mod:`models.attributes.heads`).

    ``images`` are aligned faces (uint8 or float in [-1, 1]); ``bundle`` is a loaded bundle
    with an attributes part (or an :class:`AttributeModel`). ``head_pose`` adds the
    landmark-based ``head_pose`` trait (:mod:`models.attributes.pose`; dlib, ~20 ms a face).
    The result is what face records keep under ``parameters["attributes"]``.
    """
    model = bundle if isinstance(bundle, AttributeModel) else load_attribute_model(bundle)
    inputs = face_batch(images)
    predictions = model.predict(inputs, batch_size).to_dicts()
    if head_pose:
        from models.attributes.pose import head_pose as pose_of

        pixels = np.clip(np.rint((inputs + 1.0) * 127.5), 0, 255).astype(np.uint8)
        for prediction, image in zip(predictions, pixels):
            prediction["head_pose"] = pose_of(image)
    return predictions


def attribute_part_config(model_cfg: AttributeConfig, **extra: Any) -> dict[str, Any]:
    """The manifest config of the attributes part: the model's settings plus provenance."""
    from models.attributes.data import LICENCE

    return {"model": model_cfg.to_dict(), "licence": LICENCE, **extra}


