"""How well the lineup workflow serves real suspects (``ligan lineup evaluate``).

For each suspect photo, as the web UI does it: align and invert the photo (the encoder alone,
or with the projector for some steps), make page 1 of fillers around it, and measure what a
lineup administrator relies on:

- whether the fillers share the suspect's gender, ethnicity group and age group (within one
  decade), as the bundle's attribute model reads the fillers, against the photo's labels (or,
  for a photo without labels, against the attribute model's reading of the photo itself);
- how far the fillers are from the suspect's *photo* by dlib: a fair filler looks alike without
  being the same person, :data:`LOOKALIKE_BAND`;
- whether the reconstruction is the same person as the photo to dlib (below 0.6);
- whether dlib tells the fillers of a page apart from each other (a lineup of near-twins
  resembles the suspect without being fair to anyone in it);
- whether dlib finds a face in each filler, and how long a page takes.

dlib is the independent instrument; the attribute model is the bundle's own, and the pages
are trait-matched by it, so its readings of the fillers agree with its reading of the photo by
construction. With ``probe`` (:class:`EmbeddingProbe`, logistic regressions from dlib
embeddings to the labels of real UTKFace faces) the fillers' traits are read a second,
independent way. The goals are those of the default model (docs/model_card.md) and are printed beside the
measurements.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from models.attributes.data import UTK_NAME
from models.attributes.heads import AGE_GROUPS, ETHNICITIES, GENDERS, age_group
from models.fairness import DEFAULT_LINEUP_SIZE
from models.filler_traits import parse_trait_request

TRAITS_AUTO = parse_trait_request("auto")

#: dlib distances to the suspect's photo of a filler that "looks alike, not the same person":
#: photos of one person lie below ~0.41, different real people at 0.54–0.9 (docs/faces.md).
LOOKALIKE_BAND = (0.45, 0.68)
#: The goals of the default model, measured on the path the web UI uses (docs/model_card.md).
GOALS = {"gender": 0.95, "ethnicity": 0.85, "age_group": 0.90, "lookalike": 0.80,
         "reconstruction_encoder": 0.50, "reconstruction_projector": 0.95, "face_found": 0.99,
         "page_seconds": 1.5}
#: Ethnicity labels of other datasets → UTKFace's five groups, which the attribute model knows.
#: UTKFace's "Others" holds Hispanic, Latino and Middle Eastern faces, so West Asian maps there.
ETHNICITY_GROUPS = {"white": "white", "black": "black", "asian": "asian",
                    "east_asian": "asian", "indian": "indian", "south_asian": "indian",
                    "west_asian": "other", "middle_eastern": "other", "hispanic": "other",
                    "latino": "other", "other": "other", "others": "other"}
GENDER_WORDS = {"male": "male", "m": "male", "man": "male", "female": "female", "f": "female",
                "woman": "female"}


@dataclasses.dataclass(frozen=True)
class SuspectLabels:
    """What is known of a photo's person (each may be unknown)."""

    gender: str | None = None  # one of GENDERS
    age: int | None = None  # years
    ethnicity: str | None = None  # one of ETHNICITIES

    @property
    def known(self) -> bool:
        return any(v is not None for v in (self.gender, self.age, self.ethnicity))


def _label(value: str, table: dict[str, str], what: str, where: str) -> str | None:
    text = value.strip().lower().replace(" ", "_").replace("-", "_")
    if not text:
        return None
    if text not in table:
        raise ValueError(f"{where}: unknown {what} {value!r} (known: "
                         f"{', '.join(sorted(set(table)))})")
    return table[text]


def read_labels_csv(path: str | os.PathLike) -> dict[str, SuspectLabels]:
    """A labels CSV (header ``file`` and any of ``gender``, ``age``, ``ethnicity``, as the
    London set's ``info.csv``) → labels by file name. Errors name the row."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the labels file {path}: {exc}") from None
    if not rows or "file" not in rows[0]:
        raise ValueError(f"{path}: needs a header with a 'file' column and at least one row")
    labels: dict[str, SuspectLabels] = {}
    for i, row in enumerate(rows, start=2):
        where = f"{path} row {i}"
        age = (row.get("age") or "").strip()
        if age and not age.isdigit():
            raise ValueError(f"{where}: age must be a whole number of years, got {age!r}")
        labels[Path(row["file"] or "").name] = SuspectLabels(
            gender=_label(row.get("gender") or "", GENDER_WORDS, "gender", where),
            age=int(age) if age else None,
            ethnicity=_label(row.get("ethnicity") or "", ETHNICITY_GROUPS, "ethnicity", where))
    return labels


def utkface_labels(name: str) -> SuspectLabels | None:
    """UTKFace's ``AGE_GENDER_RACE_*`` file names carry their labels; None for other names."""
    m = UTK_NAME.match(Path(name).name)
    if not m:
        return None
    return SuspectLabels(gender=GENDERS[int(m.group(2))], age=int(m.group(1)),
                         ethnicity=ETHNICITIES[int(m.group(3))])


def labels_for(photo: str | os.PathLike, table: dict[str, SuspectLabels]) -> SuspectLabels:
    """A photo's labels: from the labels table, else from a UTKFace file name, else none."""
    name = Path(photo).name
    return table.get(name) or utkface_labels(name) or SuspectLabels()


def choose_suspects(photos: Sequence[str | os.PathLike], labels: dict[str, SuspectLabels], *,
                    ages: tuple[int, int] | None = None, sample: int | None = None,
                    seed: int = 0) -> list[str]:
    """The photos to evaluate: those whose labelled age lies within ``ages`` (inclusive; a
    photo without an age is left out), then ``sample`` of them drawn with ``seed`` from their
    sorted names, so that a held-out split (thousands of faces, children among them) yields a
    reproducible set of adult suspects. Errors say what was asked and what was left."""
    chosen = sorted(str(p) for p in photos)
    if ages is not None:
        lo, hi = ages
        if not 0 <= lo <= hi:
            raise ValueError(f"an age range needs 0 ≤ low ≤ high, got {lo}-{hi}")
        chosen = [p for p in chosen
                  if (age := labels_for(p, labels).age) is not None and lo <= age <= hi]
        if not chosen:
            raise ValueError(f"no photo has a labelled age within {lo}-{hi}")
    if sample is not None:
        if sample < 1:
            raise ValueError(f"the sample must be at least 1 photo, got {sample}")
        if sample > len(chosen):
            raise ValueError(f"cannot draw {sample} photos from {len(chosen)}")
        picks = np.random.default_rng(seed).choice(len(chosen), sample, replace=False)
        chosen = [chosen[i] for i in sorted(picks)]
    return chosen


@dataclasses.dataclass
class PhotoEvaluation:
    """One suspect photo on one inversion path."""

    photo: str
    steps: int
    labels: SuspectLabels
    reference: str = "labels"  # what the traits were compared with: "labels" or "reading"
    error: str | None = None  # why the photo could not be evaluated
    reconstruction_distance: float | None = None  # dlib, reconstruction ↔ photo
    filler_distances: list[float] = dataclasses.field(default_factory=list)  # to the photo
    # pairs of fillers dlib takes for different people (at least the same-person distance
    # apart), of all pairs, and the median distance between two fillers
    filler_pairs_distinct: int = 0
    filler_pairs: int = 0
    filler_pair_distance_median: float | None = None
    # per lineup of the suspect and the next fillers in page order: whether the suspect is the
    # member least like the others (:func:`suspect_stands_out`)
    suspect_stands_out: list[bool] = dataclasses.field(default_factory=list)
    face_found: list[bool] = dataclasses.field(default_factory=list)
    gender_match: list[bool] = dataclasses.field(default_factory=list)
    ethnicity_match: list[bool] = dataclasses.field(default_factory=list)
    age_match: list[bool] = dataclasses.field(default_factory=list)
    # the same three, as the dlib-embedding probe reads the fillers (with a probe)
    probe_gender_match: list[bool] = dataclasses.field(default_factory=list)
    probe_ethnicity_match: list[bool] = dataclasses.field(default_factory=list)
    probe_age_match: list[bool] = dataclasses.field(default_factory=list)
    inversion_seconds: float = 0.0
    page_seconds: float = 0.0
    # uint8 [2 + n, R, R, 3]: the aligned photo, its reconstruction and the first fillers (for
    # the sheet; not part of the report)
    pictures: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "pictures"}
        out["labels"] = dataclasses.asdict(self.labels)
        return out


class EmbeddingProbe:
    """Gender, ethnicity and age group read from dlib identity embeddings by logistic
    regressions fitted on labelled real faces (:func:`models.attributes.identity_probe.
    fit_trait_probe`, the bundle trait probe's fit): an instrument independent of the bundle's
    attribute model, which reads the filler candidates. Traits whose labels hold fewer than two
    classes are not read."""

    def __init__(self, embeddings: np.ndarray, labels: dict[str, Sequence[str]],
                 source: str = "") -> None:
        from models.attributes.heads import CLASS_HEADS
        from models.attributes.identity_probe import PROBE_TRAITS, fit_trait_probe

        self.source, self.size = source, len(embeddings)
        indices = {t: [CLASS_HEADS[t].index(v) for v in labels[t]] for t in PROBE_TRAITS}
        fitted = {t: y for t, y in indices.items() if len(set(y)) >= 2}
        self.traits = tuple(fitted)
        self.probe = fit_trait_probe(embeddings, fitted) if fitted else None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, resolution: int, samples: int = 1000,
                    seed: int = 0) -> "EmbeddingProbe":
        """Fit on up to ``samples`` UTKFace faces (``AGE_GENDER_RACE_*`` names) of a folder,
        brought to ``resolution`` (the bundle's) so they are embedded as the fillers are."""
        from models.training.metrics import RealSet

        real = RealSet(folder, samples, resolution=resolution, seed=seed, progress=False)
        if real.face_labels is None:
            raise ValueError(f"{folder}: the probe needs UTKFace file names "
                             f"(AGE_GENDER_RACE_*.jpg) for its labels")
        return cls(real.embeddings, real.face_labels, str(folder))

    def read(self, embeddings: np.ndarray) -> list[dict[str, str]]:
        """Per embedding, the label of each trait the probe could be fitted for."""
        from models.attributes.heads import CLASS_HEADS, label_index

        x = np.asarray(embeddings, np.float64)
        if not len(x):
            return []
        if self.probe is None:
            return [{} for _ in x]
        columns = {t: label_index(t, p) for t, p in self.probe.probabilities(x).items()}
        return [{t: CLASS_HEADS[t][v[i]] for t, v in columns.items()} for i in range(len(x))]


def _suspect_traits(labels: SuspectLabels, reading: dict | None) -> tuple[dict, str]:
    """The traits fillers must share: the labels where known, else the photo's reading."""
    if labels.known or reading is None:
        return ({"gender": labels.gender, "ethnicity": labels.ethnicity,
                 "age_group": None if labels.age is None else age_group(labels.age)}, "labels")
    return ({"gender": reading["gender"]["label"], "ethnicity": reading["ethnicity"]["label"],
             "age_group": AGE_GROUPS.index(reading["age_group"]["label"])}, "reading")


def evaluate_photo(bundle, pca, photo: str | os.PathLike, labels: SuspectLabels, *, steps: int,
                   per_page: int = 24, seed: int = 0, traits: dict | None = TRAITS_AUTO,
                   probe: EmbeddingProbe | None = None, measure: str | None = None,
                   keep_pictures: int = 0) -> PhotoEvaluation:
    """Invert ``photo`` with ``steps`` projector steps (0: the encoder alone), make page 1 of
    ``per_page`` fillers (matching ``traits``, a parsed trait request, as the web UI does by
    default; None: unmatched) and measure it. A photo that cannot be used (no face, unreadable)
    comes back with ``error`` set rather than raising, so one bad photo does not end a run.
    ``keep_pictures``: keep the aligned photo, its reconstruction and this many first fillers
    in ``pictures`` (for :func:`lineup_sheet`)."""
    from models.attributes.model import ATTRIBUTES_PART, predict_attributes
    from models.faces import (SAME_PERSON_THRESHOLD, FaceError, aligned_face_embedding,
                              identity_distance)
    from models.filler_traits import suspect_reading, trait_match
    from models.faces.identity import identity_measure
    from models.fillers import filler_page
    from models.inversion import invert_photo, record_photo_identity

    result = PhotoEvaluation(photo=str(photo), steps=steps, labels=labels)
    started = time.monotonic()
    try:
        inv = invert_photo(bundle, photo, steps=steps, source_name=Path(photo).name)
    except (FaceError, ValueError) as exc:
        result.error = str(exc)
        return result
    result.inversion_seconds = time.monotonic() - started
    photo_embedding = record_photo_identity(inv.record)
    if photo_embedding is None:
        result.error = "dlib finds no face in the aligned photo, so nothing can be measured"
        return result
    reconstruction, _ = aligned_face_embedding(inv.projection.image)
    result.reconstruction_distance = float(identity_distance(reconstruction, photo_embedding))
    match = None
    if traits is not None:
        match = trait_match(suspect_reading(bundle, inv.record, inv.projection.image), traits)
    measure = measure or identity_measure(bundle)
    page = filler_page(bundle, pca, np.asarray(inv.record.latent, np.float32),
                       reference_embedding=photo_embedding,
                       measure=measure, per_page=per_page, seed=seed, traits=match)
    result.page_seconds = page.seconds
    if keep_pictures:
        result.pictures = np.concatenate([inv.aligned[None], inv.projection.image[None],
                                          page.images[:keep_pictures]]).astype(np.uint8)
    # dlib measures the page whatever ranked it (the bundle's identity network, usually)
    embeddings = np.stack([aligned_face_embedding(img)[0] for img in page.images]) \
        if len(page.images) else np.zeros((0, 128), np.float32)
    to_photo = np.atleast_1d(identity_distance(embeddings, photo_embedding))
    result.filler_distances = [round(float(d), 4) for d in to_photo]
    result.face_found = [bool(r.parameters["face_detected"]) for r in page.records]
    if len(embeddings) > 1:
        between = identity_distance(embeddings[:, None], embeddings[None])
        pairs = between[np.triu_indices(len(embeddings), 1)]
        result.filler_pairs = len(pairs)
        result.filler_pairs_distinct = int(np.sum(pairs >= SAME_PERSON_THRESHOLD))
        result.filler_pair_distance_median = round(float(np.median(pairs)), 4)
        result.suspect_stands_out = suspect_stands_out(to_photo, between)
    if bundle.has_part(ATTRIBUTES_PART) and len(page.images):
        readings = predict_attributes(bundle, np.concatenate([inv.aligned[None], page.images]))
        wanted, result.reference = _suspect_traits(labels, readings[0])
        for reading in readings[1:]:
            if wanted["gender"] is not None:
                result.gender_match.append(reading["gender"]["label"] == wanted["gender"])
            if wanted["ethnicity"] is not None:
                result.ethnicity_match.append(reading["ethnicity"]["label"] == wanted["ethnicity"])
            if wanted["age_group"] is not None:
                got = AGE_GROUPS.index(reading["age_group"]["label"])
                result.age_match.append(abs(got - wanted["age_group"]) <= 1)
    if probe is not None and labels.known and len(page.images):
        wanted, _ = _suspect_traits(labels, None)
        for read in probe.read(embeddings):
            if wanted["gender"] is not None and "gender" in read:
                result.probe_gender_match.append(read["gender"] == wanted["gender"])
            if wanted["ethnicity"] is not None and "ethnicity" in read:
                result.probe_ethnicity_match.append(read["ethnicity"] == wanted["ethnicity"])
            if wanted["age_group"] is not None and "age_group" in read:
                got = AGE_GROUPS.index(read["age_group"])
                result.probe_age_match.append(abs(got - wanted["age_group"]) <= 1)
    return result


def suspect_stands_out(photo_distances: np.ndarray, pair_distances: np.ndarray,
                       size: int = DEFAULT_LINEUP_SIZE) -> list[bool]:
    """Per lineup of ``size`` made of the suspect and the next ``size − 1`` fillers in page
    order (the last incomplete group left out), whether the suspect is the member whose mean
    identity distance to the other members is the largest: the odd one out, whom a witness who
    remembers nothing of the culprit but sees who differs could pick. Where the fillers differ
    from each other as much as from the suspect, that is one lineup in ``size``.
    ``photo_distances`` [n]: fillers to the suspect; ``pair_distances`` [n, n]: between fillers.
    """
    photo_distances = np.asarray(photo_distances, np.float64)
    pair_distances = np.asarray(pair_distances, np.float64)
    out = []
    for start in range(0, len(photo_distances) - size + 2, size - 1):
        members = list(range(start, start + size - 1))
        to_suspect = photo_distances[members]
        among = pair_distances[np.ix_(members, members)]
        fillers_mean = (to_suspect + among.sum(axis=1)) / (size - 1)
        out.append(bool(to_suspect.mean() > fillers_mean.max()))
    return out


def _share(values: Iterable[bool]) -> dict:
    values = list(values)
    return {"share": sum(values) / len(values) if values else None, "n": len(values)}


def summarise(results: Sequence[PhotoEvaluation]) -> dict:
    """Pooled measures of one inversion path (shares over all fillers of all usable photos)."""
    used = [r for r in results if r.error is None]
    lo, hi = LOOKALIKE_BAND
    distances = [d for r in used for d in r.filler_distances]
    recon = [r.reconstruction_distance for r in used if r.reconstruction_distance is not None]
    with_pairs = [r for r in used if r.filler_pair_distance_median is not None]
    pairs = sum(r.filler_pairs for r in used)
    from models.faces import SAME_PERSON_THRESHOLD

    return {
        "photos": len(results), "photos_used": len(used),
        "gender": _share(m for r in used for m in r.gender_match),
        "ethnicity": _share(m for r in used for m in r.ethnicity_match),
        "age_group": _share(m for r in used for m in r.age_match),
        "probe_gender": _share(m for r in used for m in r.probe_gender_match),
        "probe_ethnicity": _share(m for r in used for m in r.probe_ethnicity_match),
        "probe_age_group": _share(m for r in used for m in r.probe_age_match),
        "lookalike": _share(lo <= d <= hi for d in distances),
        "filler_distance_mean": float(np.mean(distances)) if distances else None,
        "farther_than_band": _share(d > hi for d in distances),
        "fillers_distinct": {"share": (sum(r.filler_pairs_distinct for r in used) / pairs
                                       if pairs else None), "n": pairs},
        "filler_pair_distance_median": (statistics.median(r.filler_pair_distance_median
                                                          for r in with_pairs)
                                        if with_pairs else None),
        "suspect_stands_out": _share(s for r in used for s in r.suspect_stands_out),
        "reconstruction": _share(d < SAME_PERSON_THRESHOLD for d in recon),
        "reconstruction_distance_mean": float(np.mean(recon)) if recon else None,
        "face_found": _share(f for r in used for f in r.face_found),
        "page_seconds": statistics.median([r.page_seconds for r in used]) if used else None,
        "inversion_seconds": (statistics.median([r.inversion_seconds for r in used])
                              if used else None),
    }


def path_name(steps: int) -> str:
    return "encoder alone" if steps == 0 else f"projector {steps} steps"


def evaluate_lineups(bundle, photos: Sequence[str | os.PathLike],
                     labels: dict[str, SuspectLabels], *, steps: Sequence[int] | None = None,
                     per_page: int = 24, seed: int = 0, traits: dict | None = TRAITS_AUTO,
                     probe: EmbeddingProbe | None = None, measure: str | None = None,
                     sheet: str | os.PathLike | None = None, sheet_fillers: int = 8,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Every photo on every inversion path → ``{"paths": [{"steps", "name", "summary"}],
    "photos": [per-photo results]}`` (JSON-ready). ``traits``: the pages' trait request (see
    :func:`evaluate_photo`); ``measure``: the identity measure that ranks the pages (the
    bundle's by default; dlib measures them either way). ``sheet``: write a PNG of the last
    path's photos, reconstructions and ``sheet_fillers`` first fillers
    (:func:`lineup_sheet`). ``progress`` gets one line per photo. ``steps``: the inversion
    paths, by default the encoder alone and the web UI's projector steps."""
    from models.inversion import PHOTO_STEPS
    from models.latent import LatentPCA

    if steps is None:
        steps = (0, PHOTO_STEPS)
    if not photos:
        raise ValueError("no photos to evaluate")
    if not 1 <= per_page <= 200:
        raise ValueError(f"fillers per page must be from 1 to 200, got {per_page}")
    if not steps or any(s < 0 for s in steps):
        raise ValueError(f"projector steps must be 0 or more, got {list(steps)}")
    if sheet is not None and not 1 <= sheet_fillers <= per_page:
        raise ValueError(f"the sheet shows 1 to {per_page} fillers a photo, got {sheet_fillers}")
    from models.faces.identity import identity_measure

    pca = LatentPCA.from_bundle(bundle)
    measure = measure or identity_measure(bundle)
    paths, per_photo = [], []
    for k, s in enumerate(steps):
        results = []
        keep = sheet_fillers if sheet is not None and k == len(steps) - 1 else 0
        for i, photo in enumerate(photos):
            r = evaluate_photo(bundle, pca, photo, labels_for(photo, labels), steps=s,
                               per_page=per_page, seed=seed, traits=traits, probe=probe,
                               measure=measure, keep_pictures=keep)
            results.append(r)
            if progress is not None:
                what = (f"skipped: {r.error}" if r.error else
                        f"reconstruction {r.reconstruction_distance:.2f} from the photo, "
                        f"{len(r.filler_distances)} fillers in {r.page_seconds:.1f} s")
                progress(f"[{path_name(s)}] {i + 1}/{len(photos)} {Path(photo).name}: {what}")
        paths.append({"steps": s, "name": path_name(s), "summary": summarise(results)})
        per_photo.extend(r.to_dict() for r in results)
    written = None  # no sheet when every photo of the path was skipped
    if sheet is not None and any(r.pictures is not None for r in results):
        from models.images import save_png

        written = str(save_png(lineup_sheet(results, sheet_fillers), sheet))
    return {"bundle": bundle.hash, "per_page": per_page, "seed": seed, "traits": traits,
            "measure": measure, "sheet": written,
            "probe": {"source": probe.source, "faces": probe.size} if probe else None,
            "lookalike_band": list(LOOKALIKE_BAND), "goals": GOALS, "paths": paths,
            "photos": per_photo}


def lineup_sheet(results: Sequence[PhotoEvaluation], fillers: int = 8,
                 zoom: int = 2) -> np.ndarray:
    """One row per evaluated photo: the aligned photo, its reconstruction, then its first
    ``fillers`` fillers (blank where a page came back short), enlarged ``zoom`` times
    (nearest neighbour, so the generator's pixels are what one sees). Photos that could not be
    used are left out."""
    from models.images import make_grid

    rows = [r.pictures for r in results if r.pictures is not None]  # kept only when used
    if not rows:
        raise ValueError("no evaluated photo to draw: every photo was skipped")
    side = rows[0].shape[1]
    tiles = np.full((len(rows), 2 + fillers, side, side, 3), 255, np.uint8)
    for i, pictures in enumerate(rows):
        tiles[i, :min(len(pictures), 2 + fillers)] = pictures[:2 + fillers]
    return make_grid(tiles.reshape(-1, *tiles.shape[2:]), cols=2 + fillers, zoom=zoom)


def _percent(entry: dict) -> str:
    if entry["share"] is None:
        return "–"
    return f"{_pc(entry['share'])} of {entry['n']}"


def _pc(share: float) -> str:
    return f"{100 * share:.0f} %"


def _number(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}{unit}"


def format_table(report: dict) -> str:
    """The report as a Markdown table: one column per inversion path, the goal last."""
    lo, hi = report["lookalike_band"]
    goals = report["goals"]
    rows = [
        ("page-1 fillers with the suspect's gender", "gender", _percent,
         f"≥ {_pc(goals['gender'])}"),
        ("… same ethnicity group", "ethnicity", _percent, f"≥ {_pc(goals['ethnicity'])}"),
        ("… age group within one group", "age_group", _percent, f"≥ {_pc(goals['age_group'])}"),
        ("same gender, by the dlib probe (independent)", "probe_gender", _percent, ""),
        ("… same ethnicity group, by the probe", "probe_ethnicity", _percent, ""),
        ("… age group within one group, by the probe", "probe_age_group", _percent, ""),
        (f"fillers' dlib distance to the photo in {lo}–{hi}", "lookalike", _percent,
         f"≥ {_pc(goals['lookalike'])}"),
        (f"… farther than {hi}", "farther_than_band", _percent, ""),
        ("mean distance of fillers to the photo", "filler_distance_mean", _number, ""),
        ("pairs of fillers dlib tells apart (0.6 or more)", "fillers_distinct", _percent, ""),
        ("median distance between two fillers (per page)", "filler_pair_distance_median",
         _number, ""),
        (f"lineups of the suspect and {DEFAULT_LINEUP_SIZE - 1} fillers (in page order) in "
         f"which the suspect is the member least like the others", "suspect_stands_out",
         _percent, f"fair: {_pc(1 / DEFAULT_LINEUP_SIZE)} (1 in {DEFAULT_LINEUP_SIZE})"),
        ("reconstruction within 0.6 of the photo", "reconstruction", _percent,
         f"≥ {_pc(goals['reconstruction_encoder'])} encoder, "
         f"≥ {_pc(goals['reconstruction_projector'])} projector"),
        ("mean distance of reconstruction to the photo", "reconstruction_distance_mean",
         _number, ""),
        ("fillers in which dlib finds a face", "face_found", _percent,
         f"≥ {_pc(goals['face_found'])}"),
        ("seconds per page (median, after inversion)", "page_seconds",
         lambda v: _number(v, " s", 1), f"≤ {goals['page_seconds']} s"),
        ("seconds per inversion (median)", "inversion_seconds", lambda v: _number(v, " s", 1),
         ""),
    ]
    paths = report["paths"]
    head = ["measure", *[p["name"] for p in paths], "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, key, fmt, goal in rows:
        if key.startswith("probe_") and not report.get("probe"):
            continue
        lines.append("| " + " | ".join([label, *[fmt(p["summary"][key]) for p in paths], goal])
                     + " |")
    first = paths[0]["summary"]
    skipped = [p for p in report["photos"] if p["error"] and p["steps"] == paths[0]["steps"]]
    by_reading = sum(1 for p in report["photos"]
                     if p["reference"] == "reading" and p["steps"] == paths[0]["steps"])
    matched = report.get("traits")
    kept = [t if v == "auto" else f"{t}={v}" for t, v in (matched or {}).items() if v != "any"]
    matching = f"fillers matched on {', '.join(kept)}" if kept else "fillers unmatched"
    notes = [f"{first['photos_used']} of {first['photos']} photos used; page 1 of "
             f"{report['per_page']} fillers; {matching}; bundle {report['bundle'][:12]}; "
             f"pages ranked by {report.get('measure', 'dlib')}; traits read by the bundle's "
             f"attribute model, distances by dlib."]
    if report.get("probe"):
        notes.append(f"probe: logistic regressions on the dlib embeddings of "
                     f"{report['probe']['faces']} labelled faces of {report['probe']['source']}.")
    if by_reading:
        notes.append(f"{by_reading} photo(s) without labels: their fillers are compared with "
                     f"the attribute model's reading of the photo.")
    notes += [f"skipped {Path(p['photo']).name}: {p['error']}" for p in skipped]
    return "\n".join(lines + [""] + notes)
