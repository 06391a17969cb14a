"""The memory lab's operations (FG-Style): transitions, style mixing grids, faces at another ψ.

All work on face records, so any face — random, filler, a frame of another transition, a mixed
face — can start the next operation, and every result is a record again.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from models.fillers import render
from models.generate import record_ws
from models.images import make_grid
from models.records import FaceRecord, face_record, latent_to_list


def style_layer_range(bundle, spec: str) -> list[int]:
    """``coarse``, ``middle``, ``fine`` (comma-separated) or ``START-STOP`` (inclusive) → w+
    entries, checked against the bundle."""
    num_ws = int(bundle.manifest["num_ws"])
    ranges = bundle.style_layers
    layers: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if part in ranges:
            layers.extend(range(*ranges[part]))
            continue
        lo, sep, hi = part.partition("-")
        if not (lo.isdigit() and (not sep or hi.isdigit())):
            raise ValueError(f"styles must be coarse, middle, fine or a layer range like 4-7, "
                             f"got {part!r}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if not 0 <= a <= b < num_ws:
            raise ValueError(f"layer range {part} is outside 0–{num_ws - 1}")
        layers.extend(range(a, b + 1))
    if not layers:
        raise ValueError(f"styles {spec!r} select no layer of this {num_ws}-entry w+")
    return sorted(set(layers))


def transition_ws(ws_a: np.ndarray, ws_b: np.ndarray, distance: float,
                  amount: int) -> tuple[np.ndarray, np.ndarray]:
    """``amount`` faces from A toward B, stopping ``distance`` (0–1) of the way, linear in w.

    The first face is A; the last lies at ``distance`` (B itself at 1). One face: the one at
    ``distance``.
    """
    if not (math.isfinite(distance) and 0.0 <= distance <= 1.0):
        raise ValueError(f"distance must be from 0 (stay at A) to 1 (reach B), got {distance}")
    if not 1 <= amount <= 1000:
        raise ValueError(f"amount must be from 1 to 1000 faces, got {amount}")
    t = np.array([distance]) if amount == 1 else np.linspace(0.0, distance, amount)
    a, b = np.asarray(ws_a, np.float64), np.asarray(ws_b, np.float64)
    out = a[None] + (b - a)[None] * t[:, None, None]
    out[t == 0.0] = a
    out[t == 1.0] = b
    return out.astype(np.float32), t


def transition(bundle, start: FaceRecord, end: FaceRecord, distance: float, amount: int,
               owner: str = "") -> tuple[list[FaceRecord], np.ndarray]:
    """Transition frames as records (parents: start and end) and their images."""
    ws, ts = transition_ws(record_ws(bundle, start), record_ws(bundle, end), distance, amount)
    images = render(bundle.generator, ws)
    records = [face_record(bundle, latent_space="w+", latent=latent_to_list(w),
                          operation="transition",
                          parameters={"t": float(t), "index": i, "distance": distance,
                                      "amount": amount},
                          parents=[start.id, end.id], owner=owner)
               for i, (w, t) in enumerate(zip(ws, ts))]
    return records, images


def style_mix(bundle, target: FaceRecord, source: FaceRecord, layers: Sequence[int],
              owner: str = "") -> tuple[FaceRecord, np.ndarray]:
    """Face ``target`` with the w+ entries ``layers`` taken from ``source``."""
    ws = record_ws(bundle, target).copy()
    layers = list(layers)
    ws[layers] = record_ws(bundle, source)[layers]
    record = face_record(bundle, latent_space="w+", latent=latent_to_list(ws),
                        operation="style_mix", parameters={"layers": layers},
                        parents=[target.id, source.id], owner=owner)
    return record, render(bundle.generator, ws[None])[0]


def mixing_grid(bundle, rows: Sequence[FaceRecord], cols: Sequence[FaceRecord],
                layers: Sequence[int]) -> np.ndarray:
    """The StyleGAN paper's figure: the column faces on top, the row faces on the left, and in
    each cell the row face with ``layers`` from the column face. Blank top-left corner."""
    row_ws = np.stack([record_ws(bundle, r) for r in rows])
    col_ws = np.stack([record_ws(bundle, c) for c in cols])
    mixed = np.repeat(row_ws[:, None], len(cols), axis=1)
    mixed[:, :, list(layers)] = col_ws[None, :, list(layers)]
    res = bundle.resolution
    tiles = [np.full((res, res, 3), 255, np.uint8), *render(bundle.generator, col_ws)]
    row_images = render(bundle.generator, row_ws)
    cells = render(bundle.generator, mixed.reshape((-1,) + mixed.shape[2:]))
    for r in range(len(rows)):
        tiles.append(row_images[r])
        tiles.extend(cells[r * len(cols):(r + 1) * len(cols)])
    return make_grid(np.stack(tiles), cols=len(cols) + 1)


def at_truncation(bundle, record: FaceRecord, psi: float, owner: str = "") -> tuple[FaceRecord, np.ndarray]:
    """The face of ``record`` re-rendered at truncation ``psi`` (toward ``w_avg``).

    z records are mapped again with the new ψ; w/w+ records are first brought back to ψ = 1
    using the ψ they were made with (impossible from ψ = 0, which keeps no identity).
    """
    if not (math.isfinite(psi) and -2.0 <= psi <= 2.0):
        raise ValueError(f"truncation psi must be a number from -2 to 2, got {psi}")
    g = bundle.generator
    w_avg = g.w_avg.numpy()
    if record.latent_space == "z":
        ws = g.map_compiled(record.latent_array()[None], psi, record.truncation_cutoff).numpy()[0]
    else:
        psi0 = record.truncation_psi
        if psi0 == 0:
            raise ValueError(f"face {record.id} was made at psi 0 (the average face): it has no "
                             f"identity left to re-truncate")
        ws = w_avg + (record_ws(bundle, record) - w_avg) * (psi / psi0)
    out = face_record(bundle, latent_space="w+", latent=latent_to_list(ws),
                     operation="face", parameters={"truncation_psi": psi}, parents=[record.id],
                     truncation_psi=psi, owner=owner)
    return out, render(g, ws[None].astype(np.float32))[0]
