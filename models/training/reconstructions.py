"""The renderer's ceiling for the attribute goals: what the metrics' two instruments read on
reconstructions (encoder → generator) of the labelled held-out faces.

A model can only produce the data's mix of genders and ethnicities if it can *draw* each group
recognisably. Reconstructions test that apart from sampling: their latents come from real
faces, a population with the data's mix by construction. So a gap the instruments find here
belongs to the encoder and generator (or to the instrument on drawn faces), and no choice of
latents, truncation or sampler can close it. Each face's true label is known, which also
gives each instrument's accuracy on drawn faces next to its accuracy on photos.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from models.training.metrics import (DISTRIBUTION_TRAITS, RealSet, analyse, distribution,
                                     distribution_difference, frechet_distance, make_probe,
                                     probe_targets)

Renderer = Callable[[np.ndarray], np.ndarray]


def bundle_renderer(bundle, batch_size: int = 32) -> Renderer:
    """Aligned uint8 faces [N, R, R, 3] → the bundle's reconstructions of them (uint8, same
    shape): its encoder's w+, drawn by its generator with constant noise."""
    from models.encoder import shared_encoder
    from models.images import to_uint8

    encode = shared_encoder(bundle)

    def render(faces: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(faces), batch_size):
            ws = encode(faces[start:start + batch_size])
            images = bundle.generator.synthesize(ws, "const", reproducible=False)
            out.append(to_uint8(images.numpy()))
        return np.concatenate(out)

    return render


def _accuracy(predicted: Sequence, truth: Sequence) -> float:
    return round(float(np.mean(np.asarray(predicted) == np.asarray(truth))), 4)


def _shares_and_accuracy(predicted: list[str], truth: list[str], classes) -> dict[str, Any]:
    return {"accuracy": _accuracy(predicted, truth), "shares": distribution(predicted, classes)}


def reconstruction_check(render: Renderer, real: RealSet, attribute_model=None,
                         folds: int = 5, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Identity kept and attribute shares read on ``render``'s reconstructions of ``real``.

    Always: the reconstructions' one-face rate, identity Fréchet distance to the real faces,
    and the mean dlib distance of each reconstruction to its own photo (with the share under
    the same-person threshold) and, as the baseline, to the other photos. With the real faces' UTKFace labels, per instrument and trait:
    accuracy on the photos and on their reconstructions, the shares read on the
    reconstructions and their difference from the labels' shares. The embedding probe is
    cross-fitted (``folds`` folds, as in :func:`~models.training.metrics.embedding_probe`), so
    no reconstruction is read by a probe that saw its own photo.
    """
    from sklearn.model_selection import KFold

    from models.attributes.heads import CLASS_HEADS
    from models.faces.identity import SAME_PERSON_THRESHOLD

    photos = np.stack(real.images)
    images = render(photos)
    embeddings, counts = analyse(images, "reconstructions", len(images), progress)
    pairs = np.linalg.norm(embeddings[:, None, :] - real.embeddings[None, :, :], axis=2)
    distances = np.diag(pairs)
    others = pairs[~np.eye(len(pairs), dtype=bool)]
    out: dict[str, Any] = {
        "samples": len(images),
        "method": "each held-out face encoded by the bundle's encoder and drawn by its generator",
        "one_face_rate": round(float(np.mean(counts == 1)), 4),
        "fd_identity": round(frechet_distance(embeddings, real.embeddings), 6),
        "identity_distance_mean": round(float(distances.mean()), 4),
        # The baseline: the same reconstructions' distance to everyone else's photo.
        "identity_distance_others_mean": round(float(others.mean()), 4) if len(others) else None,
        "same_person_rate": round(float(np.mean(distances < SAME_PERSON_THRESHOLD)), 4),
        "same_person_threshold": SAME_PERSON_THRESHOLD,
    }
    if real.face_labels is None:
        out["attributes_skipped"] = "the real faces carry no UTKFace labels in their file names"
        return out
    labels = {t: list(real.face_labels[t]) for t in DISTRIBUTION_TRAITS if t in real.face_labels}
    out["real"] = {t: real.labels[t] for t in labels}
    instruments: dict[str, dict[str, Any]] = {}
    if attribute_model is not None:
        from models.attributes.model import predict_attributes

        on_photos = predict_attributes(attribute_model, photos)
        on_drawn = predict_attributes(attribute_model, images)
        instruments["attribute_model"] = {t: {
            "accuracy_photos": _accuracy([p[t]["label"] for p in on_photos], truth),
            **_shares_and_accuracy([p[t]["label"] for p in on_drawn], truth, CLASS_HEADS[t])}
            for t, truth in labels.items()}
    probe: dict[str, dict[str, Any]] = {}
    for trait, truth in labels.items():
        classes = CLASS_HEADS[trait]
        y, unfit = probe_targets(truth, classes, folds)
        if unfit:
            continue  # the main result's probe lists the reason
        on_photos, on_drawn = np.empty_like(y), np.empty_like(y)
        for fit, held in KFold(folds, shuffle=True, random_state=seed).split(y):
            model = make_probe().fit(real.embeddings[fit], y[fit])
            on_photos[held] = model.predict(real.embeddings[held])
            on_drawn[held] = model.predict(embeddings[held])
        probe[trait] = {
            "accuracy_photos": _accuracy(on_photos, y),
            **_shares_and_accuracy([classes[i] for i in on_drawn], truth, classes)}
    instruments["probe"] = probe
    for readings in instruments.values():
        difference = distribution_difference({t: r["shares"] for t, r in readings.items()},
                                             {t: out["real"][t] for t in readings})
        for trait, reading in readings.items():
            reading["difference"] = difference[trait]
    out["instruments"] = instruments
    return out


def format_lines(check: dict[str, Any]) -> list[str]:
    """The check as lines for :func:`~models.training.metrics.format_table`."""
    lines = ["", f"reconstructions of {check['samples']} real faces (encoder → generator; a gap "
                 f"here is the renderer's, no sampler can close it):",
             f"  one-face rate {100 * check['one_face_rate']:.1f} %, identity Fréchet distance "
             f"{check['fd_identity']:.4f}",
             f"  distance to its own photo {check['identity_distance_mean']:.3f} (to the others' "
             f"{check['identity_distance_others_mean'] or float('nan'):.3f}); same person "
             f"(< {check['same_person_threshold']}): {100 * check['same_person_rate']:.0f} %"]
    if "attributes_skipped" in check:
        return lines + [f"  attribute readings skipped: {check['attributes_skipped']}"]
    names = {"attribute_model": "attribute model", "probe": "identity-embedding probe"}
    for instrument, readings in check["instruments"].items():
        for trait, r in readings.items():
            shares = ", ".join(f"{c} {100 * r['shares'][c]:.0f}/{100 * check['real'][trait][c]:.0f}"
                               for c in check["real"][trait])
            lines.append(f"  {names[instrument]:<24} {trait:<10} accuracy photos "
                         f"{100 * r['accuracy_photos']:.0f} % → drawn {100 * r['accuracy']:.0f} %;"
                         f" max |Δ| {r['difference']['max_abs_pp']:.1f} pp: {shares}")
    return lines
