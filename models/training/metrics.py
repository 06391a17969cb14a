"""Quality metrics of a generator that can be computed on these machines (no Inception weights).

* **Identity Fréchet distance** (``fd_identity``): the Fréchet distance between Gaussians fitted
  to dlib's 128-d identity embeddings of generated faces and of held-out real faces — FID's
  formula in a face-specific feature space. 0 for identical distributions; dlib's same-person
  threshold (0.6) is a distance between single faces, so values are on a different scale from
  FID and only comparable between runs evaluated on the same real set and sample count.
* **Precision / recall** in the same embedding space, by the k-NN manifold estimate of
  Kynkäänniemi et al. (2019, k = 3): precision is the share of generated faces inside the real
  manifold (within the k-th-neighbour radius of some real face), recall the share of real faces
  inside the generated manifold. Precision measures realism, recall coverage.
* **One-face rate**: the share of generated images in which dlib's HOG detector finds exactly
  one face (images are scaled to 256 px first, as for the identity embedding).
* **Attribute distribution**: the shares of predicted gender, age group and ethnicity among
  generated faces (a bundle's attribute model) against the real data's labels (UTKFace file
  names) or, for unlabelled data, against the model's predictions on the real faces; reported
  as percentage-point differences per class and the largest one per trait.
* **Real-vs-generated detectors** (``real_vs_generated``, in ``ligan train metrics``): how
  well a logistic regression on the identity embeddings and a small CNN on the pixels tell
  generated faces from the real ones, cross-validated (:mod:`models.training.realness`).
* **The same distribution by a second instrument** (``attributes_probe``), where the real faces
  carry UTKFace labels: a logistic regression on the dlib identity embeddings already computed
  for the Fréchet distance, fitted on the labelled real faces (cross-validated there, which
  gives its accuracy and its own view of the real shares) and applied to the generated faces.
  It is independent of the attribute model, costs seconds, and is more accurate on real faces;
  where the two instruments disagree on generated faces, neither reading can be trusted (see
  docs/training.md).
* **Label agreement** (``attributes_probe.label_agreement``), for a conditional generator: the
  share of generated faces that the same probe reads as the group the generator was given
  (labels drawn from z in the data's shares, :meth:`MappingNetwork.labels_from_z`), beside
  the probe's accuracy on real faces, its ceiling.

FID proper needs Inception-v3 ImageNet weights, which do not exist on these machines: it is
computed only from a weights file the user supplies (``models.training.fid``), else ``None``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from models.faces import aligned_face_count, aligned_face_count_and_embedding

#: Traits whose distribution is compared (class heads of the attribute model).
DISTRIBUTION_TRAITS = ("gender", "age_group", "ethnicity")


# -- the statistics ----------------------------------------------------------------------------


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``.

    ``|μa − μb|² + tr(Σa) + tr(Σb) − 2 tr((Σa Σb)^½)``. The trace of the product's square root
    is computed as that of ``(Σa^½ Σb Σa^½)^½`` (same eigenvalues, but symmetric), so it is
    real and stable even for the singular covariances of small samples.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two [N, d] sets of the same d, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Fréchet distance needs at least 2 samples in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh((root_a @ cov_b @ root_a + (root_a @ cov_b @ root_a).T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
    return max(value, 0.0)


def identity_spread(generated: np.ndarray, real: np.ndarray) -> float:
    """How widely generated identities vary, as a share of how widely real ones do: the trace
    of the embeddings' covariance, generated over real (1: as varied as the photos; a
    generator that draws few distinct people reads well below 1 even when each face passes)."""
    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    return float(np.trace(np.cov(generated, rowvar=False)) / np.trace(np.cov(real, rowvar=False)))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    if len(x) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, "
                         f"got {len(x)}")
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def _coverage(manifold: np.ndarray, radii: np.ndarray, probes: np.ndarray) -> float:
    """Share of ``probes`` within the radius of at least one point of ``manifold``."""
    inside = np.zeros(len(probes), bool)
    for start in range(0, len(probes), 1024):
        d = _pairwise(probes[start:start + 1024], manifold)
        inside[start:start + 1024] = (d <= radii[None, :]).any(1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` against ``real``.

    Each set's manifold is the union of balls around its points with the distance to the k-th
    nearest neighbour as radius. Precision: share of fake points inside the real manifold;
    recall: share of real points inside the fake manifold.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = _coverage(real, _knn_radii(real, k), fake)
    recall = _coverage(fake, _knn_radii(fake, k), real)
    return precision, recall


def distribution(labels: Iterable[str], classes: Sequence[str]) -> dict[str, float]:
    """Share of each class among ``labels`` (0 for absent classes; unknown labels are an
    error)."""
    labels = list(labels)
    unknown = set(labels) - set(classes)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not among {list(classes)}")
    n = max(len(labels), 1)
    return {c: labels.count(c) / n for c in classes}


def distribution_difference(generated: dict[str, dict[str, float]],
                            reference: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per trait: percentage-point difference generated − reference of each class, and the
    largest absolute one (``max_abs_pp``)."""
    out: dict[str, dict[str, Any]] = {}
    for trait, ref in reference.items():
        gen = generated.get(trait, {})
        pp = {c: round(100 * (gen.get(c, 0.0) - ref[c]), 2) for c in ref}
        out[trait] = {"pp": pp, "max_abs_pp": max((abs(v) for v in pp.values()), default=0.0)}
    return out


# -- faces: detection and embedding in one pass --------------------------------------------------


def one_face_rate(images: Iterable[np.ndarray]) -> float:
    """Share of ``images`` in which exactly one face is found."""
    counts = [aligned_face_count(img) for img in images]
    if not counts:
        raise ValueError("one-face rate of no images")
    return sum(c == 1 for c in counts) / len(counts)


def analyse(images: Iterable[np.ndarray], desc: str, total: int | None = None,
            progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings [N, 128] and face counts [N] of ``images``, with a tqdm bar."""
    embeddings, counts = [], []
    for img in tqdm(images, total=total, desc=desc, unit="face", disable=not progress):
        n, e = aligned_face_count_and_embedding(img)
        counts.append(n)
        embeddings.append(e)
    return np.stack(embeddings).astype(np.float32), np.asarray(counts, np.int64)


# -- where the images come from ------------------------------------------------------------------


def _latents(generator, samples: int, seed: int, batch_size: int) -> Iterator[np.ndarray]:
    """The z batches of :func:`generated_images` (a seeded RNG)."""
    rng = np.random.RandomState(seed)
    for start in range(0, samples, batch_size):
        yield rng.randn(min(batch_size, samples - start), generator.cfg.z_dim).astype(np.float32)


def generated_images(generator, samples: int, psi: float = 0.7, seed: int = 0,
                     batch_size: int = 16) -> Iterator[np.ndarray]:
    """``samples`` uint8 faces from ``generator`` (z from a seeded RNG, constant noise)."""
    from models.images import to_uint8

    for z in _latents(generator, samples, seed, batch_size):
        ws = generator.map_compiled(z, psi, reproducible=False)
        yield from to_uint8(generator.synthesize(ws, "const", reproducible=False).numpy())


def drawn_labels(generator, label_traits: dict[str, Sequence[str]], samples: int,
                 seed: int = 0, batch_size: int = 16) -> dict[str, list[str]]:
    """Per trait, the group a conditional ``generator`` drew for each face of
    :func:`generated_images` (its labels come from z); ``label_traits``: the traits and groups
    of its label vector, in order."""
    labels = np.concatenate([generator.mapping.labels_from_z(z).numpy()
                             for z in _latents(generator, samples, seed, batch_size)])
    from models.conditioning import label_slices

    slices = label_slices(label_traits)
    return {trait: [groups[i] for i in labels[:, slices[trait]].argmax(axis=1)]
            for trait, groups in label_traits.items()}


def _resize(image: np.ndarray, resolution: int | None) -> np.ndarray:
    import cv2

    if resolution is None or image.shape[:2] == (resolution, resolution):
        return image
    return cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_AREA)


def real_images(source: str | os.PathLike, samples: int, resolution: int | None = None,
                seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``samples`` real faces (a seeded random choice) from an image folder or TFRecord
    shards, resized to ``resolution`` so that they pass through the same scaling as generated
    faces; also their file names ("" for records), which may carry UTKFace labels."""
    import cv2

    from models.training.data import source_files

    files, records = source_files(source)
    if records:
        import tensorflow as tf

        feature = {"image": tf.io.FixedLenFeature([], tf.string)}
        ds = tf.data.TFRecordDataset(files).map(
            lambda r: tf.io.parse_single_example(r, feature)["image"])
        ds = ds.shuffle(10_000, seed=seed).take(samples)
        images = [_resize(tf.io.decode_image(b, channels=3, expand_animations=False).numpy(),
                          resolution) for b in ds]
        return images, [""] * len(images)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(files), min(samples, len(files)), replace=False))
    images, names = [], []
    for i in chosen:
        bgr = cv2.imread(files[i], cv2.IMREAD_COLOR)
        if bgr is None:
            continue  # unreadable files are not the generator's fault; they are skipped
        images.append(_resize(bgr[:, :, ::-1].copy(), resolution))
        names.append(Path(files[i]).name)
    if not images:
        raise ValueError(f"no readable images in {source}")
    return images, names


def utkface_labels(names: Sequence[str]) -> dict[str, list[str]] | None:
    """Gender, age group and ethnicity of each face from UTKFace file names
    (``AGE_GENDER_RACE_*``); None unless every name carries the labels."""
    from models.attributes.data import UTK_NAME
    from models.attributes.heads import AGE_GROUPS, ETHNICITIES, GENDERS, age_group

    matches = [UTK_NAME.match(n) for n in names]
    if not names or not all(matches):
        return None
    return {"gender": [GENDERS[int(m.group(2))] for m in matches],
            "age_group": [AGE_GROUPS[age_group(int(m.group(1)))] for m in matches],
            "ethnicity": [ETHNICITIES[int(m.group(3))] for m in matches]}


def label_shares(labels: dict[str, Sequence[str]] | None) -> dict[str, dict[str, float]] | None:
    """Per trait, the share of each class among per-face ``labels`` (None stays None)."""
    from models.attributes.heads import CLASS_HEADS

    if labels is None:
        return None
    return {t: distribution(v, CLASS_HEADS[t]) for t, v in labels.items()}


def utkface_label_distribution(names: Sequence[str]) -> dict[str, dict[str, float]] | None:
    """Distribution of gender, age group and ethnicity from UTKFace file names; None unless
    every name carries the labels."""
    return label_shares(utkface_labels(names))


def predicted_distribution(attribute_model, images: Sequence[np.ndarray]
                           ) -> dict[str, dict[str, float]]:
    """Distribution of the attribute model's predicted labels of each compared trait."""
    from models.attributes.heads import CLASS_HEADS
    from models.attributes.model import predict_attributes

    predictions = predict_attributes(attribute_model, np.stack(images))
    return {t: distribution([p[t]["label"] for p in predictions], CLASS_HEADS[t])
            for t in DISTRIBUTION_TRAITS}


PROBE_FOLDS = 5


def make_probe():
    """A fresh (unfitted) probe: logistic regression on identity embeddings."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=5000)


def probe_targets(labels: Sequence[str], classes: Sequence[str], folds: int
                  ) -> tuple[np.ndarray, str | None]:
    """A trait's labels as class indices for the probe, and why the probe cannot be fitted
    on them (``None`` when it can: two classes and at least ``folds`` faces)."""
    y = np.array([list(classes).index(v) for v in labels])
    present = len(np.unique(y))
    if present < 2 or len(y) < folds:
        return y, (f"{len(y)} real faces in {present} class(es): need two classes and at "
                   f"least {folds} faces")
    return y, None


def embedding_probe(real_embeddings: np.ndarray, real_labels: dict[str, Sequence[str]],
                    fake_embeddings: np.ndarray, folds: int = PROBE_FOLDS, seed: int = 0,
                    fake_labels: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Attribute shares of generated faces by a second instrument: per trait, a logistic
    regression from identity embeddings to the real faces' labels.

    On the real faces it is cross-validated (``folds`` folds), which gives its accuracy and
    the shares it reads there (``real_predicted``); fitted on all of them, it reads the
    generated faces. Traits with fewer than two classes or fewer than ``folds`` faces in the
    real set are listed under ``skipped`` with the reason. ``fake_labels`` (a conditional
    generator's groups per face) add ``label_agreement``: per trait, the share of generated
    faces read as their group.
    """
    from sklearn.model_selection import KFold, cross_val_predict

    from models.attributes.heads import CLASS_HEADS

    out: dict[str, Any] = {
        "method": f"logistic regression on dlib identity embeddings of the labelled real "
                  f"faces ({folds}-fold cross-validated there)",
        "accuracy": {}, "generated": {}, "real_predicted": {}, "skipped": {}}
    real_x = np.asarray(real_embeddings, np.float64)
    fake_x = np.asarray(fake_embeddings, np.float64)
    for trait, labels in real_labels.items():
        classes = CLASS_HEADS[trait]
        y, unfit = probe_targets(labels, classes, folds)
        if unfit:
            out["skipped"][trait] = unfit
            continue
        probe = make_probe()
        # cross_val_predict fits clones; the probe itself is then fitted on every real face.
        cv = cross_val_predict(probe, real_x, y, cv=KFold(folds, shuffle=True, random_state=seed))
        fake = probe.fit(real_x, y).predict(fake_x)
        out["accuracy"][trait] = round(float(np.mean(cv == y)), 4)
        out["real_predicted"][trait] = distribution([classes[i] for i in cv], classes)
        out["generated"][trait] = distribution([classes[i] for i in fake], classes)
        if fake_labels is not None and trait in fake_labels:
            wanted = np.array([classes.index(v) for v in fake_labels[trait]])
            out.setdefault("label_agreement", {})[trait] = round(float(np.mean(fake == wanted)), 4)
    return out


# -- everything at once ------------------------------------------------------------------------


class RealSet:
    """Held-out real faces with their embeddings and label distribution, computed once (the
    trainer reuses it at every snapshot)."""

    def __init__(self, source: str | os.PathLike, samples: int, resolution: int | None,
                 seed: int = 0, progress: bool = True) -> None:
        self.source = str(source)
        self.images, self.names = real_images(source, samples, resolution, seed)
        self.embeddings, self.counts = analyse(self.images, "real faces", len(self.images),
                                               progress)
        self.face_labels = utkface_labels(self.names)
        self.labels = label_shares(self.face_labels)
        self._inception: dict[str, np.ndarray] = {}  # weights sha256 → features

    def __len__(self) -> int:
        return len(self.images)

    def inception_features(self, inception) -> np.ndarray:
        """The real faces' Inception features (computed once per weights file)."""
        if inception.sha256 not in self._inception:
            self._inception[inception.sha256] = inception(self.images)
        return self._inception[inception.sha256]


def evaluate_generator(generator, real: RealSet, samples: int, psi: float = 0.7,
                       seed: int = 0, attribute_model=None, k: int = 3,
                       progress: bool = True, inception=None,
                       realness: bool = False,
                       label_traits: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Every metric of this module for ``samples`` faces of ``generator`` against ``real``.

    ``attribute_model``: an :class:`~models.attributes.model.AttributeModel` or a bundle with
    an attributes part; without it the attribute comparison is left out. ``inception``: a
    :class:`~models.training.fid.InceptionFeatures` for FID; without it ``fid`` is None.
    ``realness``: also train the real-vs-generated detectors (:mod:`models.training.realness`).
    ``label_traits``: a conditional generator's traits and groups (its label vector's order),
    for the probe's label agreement. Returns a JSON-able dict (see docs/training.md for the keys).
    """
    if samples < k + 1:
        raise ValueError(f"need at least {k + 1} samples, got {samples}")
    started = time.monotonic()
    images = list(generated_images(generator, samples, psi, seed))
    embeddings, counts = analyse(images, "generated faces", samples, progress)
    precision, recall = precision_recall(real.embeddings, embeddings, k)
    result: dict[str, Any] = {
        "samples": samples, "real_samples": len(real), "real": real.source, "psi": psi,
        "seed": seed,
        "fd_identity": round(frechet_distance(embeddings, real.embeddings), 6),
        "identity_spread": round(identity_spread(embeddings, real.embeddings), 4),
        "precision": round(precision, 4), "recall": round(recall, 4), "k": k,
        "one_face_rate": round(float(np.mean(counts == 1)), 4),
        "no_face_rate": round(float(np.mean(counts == 0)), 4),
        "real_one_face_rate": round(float(np.mean(real.counts == 1)), 4),
        "fine_detail_power": _fine_detail(images, real.images),
        "fid": None,  # needs Inception weights (only from a file the user supplies)
    }
    if inception is not None:
        result["fid"] = round(frechet_distance(inception(images),
                                               real.inception_features(inception)), 4)
        result["fid_inception"] = inception.describe()
    if attribute_model is not None:
        generated = predicted_distribution(attribute_model, images)
        # The classifier's view of the real faces too: generated vs real both predicted, so
        # that its own errors (which shift every predicted share) cancel out.
        real_predicted = predicted_distribution(attribute_model, real.images)
        reference = real.labels
        source = "labels"
        if reference is None:
            reference, source = real_predicted, "predicted"
        result["attributes"] = {
            "reference": source, "generated": generated, "real": reference,
            "difference": distribution_difference(generated, reference),
            "real_predicted": real_predicted,
            "difference_predicted": distribution_difference(generated, real_predicted)}
    if real.face_labels is not None:
        fake_labels = drawn_labels(generator, label_traits, samples, seed) \
            if label_traits else None
        probe = embedding_probe(real.embeddings, real.face_labels, embeddings, seed=seed,
                                fake_labels=fake_labels)
        probe["real"] = {t: real.labels[t] for t in probe["generated"]}
        probe["difference"] = distribution_difference(probe["generated"], probe["real"])
        probe["difference_predicted"] = distribution_difference(probe["generated"],
                                                                probe["real_predicted"])
        result["attributes_probe"] = probe
    if realness:
        from models.training.realness import real_vs_generated

        result["real_vs_generated"] = real_vs_generated(
            real.embeddings, embeddings, np.stack(real.images), np.stack(images), seed=seed)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _fine_detail(generated: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float | None:
    """:func:`~models.training.spectrum.fine_detail_power` when every face has one size, else
    None (real faces are resized to the generator's resolution when that is known)."""
    from models.training.spectrum import fine_detail_power

    if len({image.shape for image in (*generated, *real)}) != 1:
        return None
    return round(fine_detail_power(np.stack(generated), np.stack(real)), 4)


def evaluate_bundle(bundle_path: str | os.PathLike, real_source: str | os.PathLike,
                    samples: int, psi: float = 0.7, seed: int = 0,
                    real_samples: int | None = None, progress: bool = True,
                    inception_weights: str | os.PathLike | None = None,
                    reconstructions: bool = True) -> dict[str, Any]:
    """Load a bundle and evaluate it against real faces (its attribute model, when it has
    one, adds the attribute comparison; ``inception_weights``, a Keras Inception-v3 weights
    file, adds FID; with ``reconstructions`` and an encoder in the bundle, the instruments
    also read its reconstructions of the real faces: see
    :mod:`models.training.reconstructions`)."""
    from models.attributes.model import ATTRIBUTES_PART
    from models.bundle import load_bundle
    from models.conditioning import bundle_traits
    from models.encoder import ENCODER_PART
    from models.training.fid import InceptionFeatures

    inception = InceptionFeatures(inception_weights) if inception_weights else None
    bundle = load_bundle(bundle_path)
    real = RealSet(real_source, real_samples or samples, bundle.resolution, seed, progress)
    attributes = bundle if bundle.has_part(ATTRIBUTES_PART) else None
    label_traits = bundle_traits(bundle.manifest, bundle.generator.cfg.label_groups)
    result = evaluate_generator(bundle.generator, real, samples, psi, seed, attributes,
                                progress=progress, inception=inception, realness=True,
                                label_traits=label_traits or None)
    if reconstructions and bundle.has_part(ENCODER_PART):
        from models.training.reconstructions import bundle_renderer, reconstruction_check

        result["reconstructions"] = reconstruction_check(
            bundle_renderer(bundle), real, attributes, seed=seed, progress=progress)
    result["bundle"] = str(bundle_path)
    result["bundle_hash"] = bundle.hash
    return result


def scalars(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a result worth a TensorBoard curve, under ``metrics/…`` names."""
    out = {f"metrics/{k}": float(result[k]) for k in
           ("fd_identity", "identity_spread", "precision", "recall", "one_face_rate",
            "fine_detail_power", "fid")
           if result.get(k) is not None}
    for trait, diff in result.get("attributes", {}).get("difference", {}).items():
        out[f"metrics/{trait}_max_abs_pp"] = float(diff["max_abs_pp"])
    for trait, diff in result.get("attributes_probe", {}).get("difference", {}).items():
        out[f"metrics/{trait}_probe_max_abs_pp"] = float(diff["max_abs_pp"])
    for trait, share in result.get("attributes_probe", {}).get("label_agreement", {}).items():
        out[f"metrics/{trait}_label_agreement"] = float(share)
    return out


def _share_lines(title: str, generated: dict, real_shares: dict, difference: dict) -> list[str]:
    lines = ["", f"attribute shares, {title}, percentage points:"]
    for trait, diff in difference.items():
        parts = [f"{c} {100 * generated[trait][c]:.0f}/{100 * real_shares[trait][c]:.0f} "
                 f"({v:+.1f})" for c, v in diff["pp"].items()]
        lines.append(f"  {trait:<10} max |Δ| {diff['max_abs_pp']:.1f} pp: " + ", ".join(parts))
    return lines


def format_table(result: dict[str, Any]) -> str:
    """A result as a readable table."""
    rows = [("identity Fréchet distance", f"{result['fd_identity']:.4f}"),
            ("identity spread (generated / real covariance trace)",
             f"{result['identity_spread']:.2f}" if "identity_spread" in result
             else "not measured"),
            (f"precision (k={result['k']})", f"{result['precision']:.3f}"),
            (f"recall (k={result['k']})", f"{result['recall']:.3f}"),
            ("one-face rate", f"{100 * result['one_face_rate']:.1f} %"),
            ("no-face rate", f"{100 * result['no_face_rate']:.1f} %"),
            ("one-face rate of the real faces", f"{100 * result['real_one_face_rate']:.1f} %"),
            ("fine-detail power (generated / real, finest third of frequencies)",
             f"{result['fine_detail_power']:.2f} (photos: 1; below: blur, above: grain)"
             if result.get("fine_detail_power") is not None else "not measured"),
            ("FID", f"{result['fid']:.2f} (Keras Inception-v3, "
                    f"{result['fid_inception']['weights']})" if result.get("fid") is not None
             else "not computed (needs an Inception weights file: --inception)")]
    detectors = result.get("real_vs_generated")
    if detectors:
        rows.append(("real-vs-generated detectors",
                     f"embeddings {100 * detectors['embedding_accuracy']:.1f} %"
                     + (f", pixels {100 * detectors['pixel_accuracy']:.1f} %"
                        if "pixel_accuracy" in detectors else "")
                     + f" (cross-validated, {detectors['faces_each']} faces each; 50 % = "
                       f"indistinguishable, goal ≤ {100 * detectors['goal']:.0f} %)"))
    lines = [f"{result['samples']} generated faces (ψ = {result['psi']}) against "
             f"{result['real_samples']} real faces from {result['real']}", ""]
    width = max(len(r[0]) for r in rows)
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    attrs = result.get("attributes")
    if attrs:
        blocks = [(f"real ({attrs['reference']})", attrs["real"], attrs["difference"])]
        if attrs["reference"] == "labels" and "difference_predicted" in attrs:
            blocks.append(("real (predicted too)", attrs["real_predicted"],
                           attrs["difference_predicted"]))
        for title, real_shares, difference in blocks:
            lines += _share_lines(f"generated vs {title}", attrs["generated"], real_shares,
                                  difference)
    probe = result.get("attributes_probe")
    if probe and probe["generated"]:
        accuracy = ", ".join(f"{t} {100 * a:.0f} %" for t, a in probe["accuracy"].items())
        lines += ["", f"identity-embedding probe (accuracy on the real faces: {accuracy}):"]
        lines += _share_lines("probe: generated vs real (labels)", probe["generated"],
                              probe["real"], probe["difference"])
        lines += _share_lines("probe: generated vs real (probe too)", probe["generated"],
                              probe["real_predicted"], probe["difference_predicted"])
        if probe.get("label_agreement"):
            lines += ["", "conditional generator: faces the probe reads as the group they were "
                          "drawn with (its accuracy on real faces in brackets): " + ", ".join(
                              f"{t} {100 * a:.0f} % ({100 * probe['accuracy'][t]:.0f} %)"
                              for t, a in probe["label_agreement"].items())]
    if "reconstructions" in result:
        from models.training.reconstructions import format_lines

        lines += format_lines(result["reconstructions"])
    return "\n".join(lines)
