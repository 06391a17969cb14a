"""A loss that teaches a conditional generator to draw the labels it is given.

A projection discriminator (``--condition``) learns to use labels only from how real and
generated faces of the same labels differ, and on a generator already trained without labels
that signal is slow: 30 kimg into the campaign's conditional fork, swapping a real face's gender
label moved the discriminator's score by 0.07 against a spread of 1.5, and the same latents
drawn as "man" and as "woman" were read as men 38 and 33 % of the time.

The label loss reads every generated face through the feature discriminator's frozen identity
network (:mod:`models.training.feature_d`, which computes the embedding anyway) and the same
bundle's trait probe (:mod:`models.attributes.identity_probe`: a linear read-out of the
embedding that reads held-out photos' gender right 91 % of the time), and adds the
cross-entropy of that reading against the face's labels to the generator's loss — an
auxiliary classifier (Odena et al. 2017, AC-GAN) that is frozen, so the generator is taught
what faces of each label look like to a reader trained on photos, and cannot teach the reader.
Both discriminators still judge realism, so a face cannot pass on its labels alone.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.attributes.heads import CLASS_HEADS
from models.attributes.identity_probe import TraitProbe
from models.conditioning import check_layout, label_slices


class LabelReader:
    """The trait probe as TensorFlow constants, in the order of a conditional layout's label
    vector, with the loss and how often the reading agrees with the labels."""

    def __init__(self, probe: TraitProbe, layout: str) -> None:
        self.blocks: list[tuple[str, slice, tf.Tensor, tf.Tensor]] = []
        traits = check_layout(layout)
        slices = label_slices(traits)
        for trait, groups in traits.items():
            if trait not in probe.coef:
                raise ValueError(f"the trait probe does not read {trait}, which the {layout} "
                                 f"labels name")
            if tuple(CLASS_HEADS[trait]) != tuple(groups):
                raise ValueError(f"the trait probe's {trait} classes "
                                 f"({', '.join(CLASS_HEADS[trait])}) are not the labels' "
                                 f"({', '.join(groups)})")
            coef = tf.constant(np.asarray(probe.coef[trait], np.float32).T)
            intercept = tf.constant(np.asarray(probe.intercept[trait], np.float32))
            self.blocks.append((trait, slices[trait], coef, intercept))

    def loss(self, embeddings: tf.Tensor,
             labels: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Mean over the traits of the cross-entropy between the probe's reading of
        ``embeddings`` [N, 128] and the one-hot ``labels`` [N, c_dim]; and per trait the share of
        faces whose likeliest reading is their label."""
        labels = tf.cast(labels, tf.float32)
        losses, agreement = [], {}
        for trait, block, coef, intercept in self.blocks:
            logits = tf.matmul(tf.cast(embeddings, tf.float32), coef) + intercept
            wanted = labels[:, block]
            losses.append(tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(wanted, logits)))
            agreement[trait] = tf.reduce_mean(tf.cast(
                tf.equal(tf.argmax(logits, axis=1), tf.argmax(wanted, axis=1)), tf.float32))
        return tf.add_n(losses) / len(losses), agreement


def load_label_reader(bundle_path: str, layout: str) -> LabelReader:
    """The label reader of the bundle at ``bundle_path`` (its trait probe); a clear error where
    it has none."""
    from models.attributes.identity_probe import PROBE_PART, load_trait_probe
    from models.bundle import load_bundle

    probe = load_trait_probe(load_bundle(bundle_path, parts=()))
    if probe is None:
        raise ValueError(f"the label loss reads faces with a trait probe, and {bundle_path} has "
                         f"none (its '{PROBE_PART}' part: ligan train trait-probe)")
    return LabelReader(probe, layout)
