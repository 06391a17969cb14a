"""The build report: how many images each step dropped and why, as JSON, a printed table and
contact sheets (a grid of sample thumbnails per rejection reason).

A report is a plain dict (``report.json``), so the reports of the tasks of a SLURM job array
can be merged by :func:`merge_reports` without re-running anything. Sample thumbnails are kept
as small PNGs under ``rejected/<reason>/`` next to the report, so a merge can draw the combined
contact sheets from them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image, ImageDraw

from .items import THUMB_SIDE, Drop

SAMPLES_PER_REASON = 16
REPORT_VERSION = 1


def reason_slug(reason: str) -> str:
    """File-name form of a reason: ``"no face"`` → ``"no_face"``."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "other"


class ReportBuilder:
    """Collects outcomes in the parent process, in input order; holds counts, the list of
    dropped and kept files and at most :data:`SAMPLES_PER_REASON` thumbnails per reason."""

    def __init__(self, step_names: list[str], step_params: list[dict[str, Any]]):
        self.step_names, self.step_params = step_names, step_params
        self.dropped_at = [dict() for _ in step_names]  # step -> {reason: count}
        self.dropped: list[dict[str, str]] = []
        self.kept: list[str] = []
        self.samples: dict[str, list[tuple[str, str, np.ndarray | None]]] = {}
        self.total = 0

    def add_kept(self, path: str) -> None:
        self.total += 1
        self.kept.append(path)

    def add_drop(self, path: str, step: int, drop: Drop, thumb: np.ndarray | None) -> None:
        self.total += 1
        counts = self.dropped_at[step]
        counts[drop.reason] = counts.get(drop.reason, 0) + 1
        self.dropped.append({"file": path, "step": self.step_names[step], "reason": drop.reason,
                             "detail": drop.detail})
        samples = self.samples.setdefault(drop.reason, [])
        if len(samples) < SAMPLES_PER_REASON:
            samples.append((path, drop.detail, thumb))

    def finish(self, out_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
        """Write the sample thumbnails and return the report dict (not yet saved)."""
        steps, remaining = [], self.total
        for name, params, counts in zip(self.step_names, self.step_params, self.dropped_at):
            dropped = sum(counts.values())
            steps.append({"step": name, "params": params, "in": remaining,
                          "kept": remaining - dropped, "dropped": dropped,
                          "reasons": dict(sorted(counts.items()))})
            remaining -= dropped
        samples = {}
        for reason, entries in self.samples.items():
            folder = out_dir / "rejected" / reason_slug(reason)
            folder.mkdir(parents=True, exist_ok=True)
            listed = []
            for i, (path, detail, thumb) in enumerate(entries):
                rel = None
                if thumb is not None:
                    rel = f"rejected/{reason_slug(reason)}/{i:02d}.png"
                    Image.fromarray(thumb).save(out_dir / rel)
                listed.append({"file": path, "detail": detail, "thumbnail": rel})
            samples[reason] = listed
        return {"version": REPORT_VERSION, "input": self.total, "output": len(self.kept),
                "steps": steps, "dropped": self.dropped, "kept": self.kept,
                "samples": samples, **extra}


def drop_reasons(report: dict[str, Any]) -> dict[str, int]:
    """Total drops per reason over all steps."""
    totals: dict[str, int] = {}
    for step in report["steps"]:
        for reason, n in step["reasons"].items():
            totals[reason] = totals.get(reason, 0) + n
    return totals


def format_table(report: dict[str, Any]) -> str:
    """The report as a text table: one row per step (in, kept, dropped, reasons)."""
    rows = [("step", "in", "kept", "dropped", "reasons")]
    for s in report["steps"]:
        reasons = ", ".join(f"{r} {n}" for r, n in s["reasons"].items())
        rows.append((s["step"], str(s["in"]), str(s["kept"]), str(s["dropped"]), reasons))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:4], widths[1:])]
        lines.append("  ".join(cells + [row[4]]).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -------")
    lines.append(f"{report['input']} images in, {report['output']} written to "
                 f"{len(report.get('shards', []))} shard(s)")
    if report.get("seconds"):
        lines[-1] += f" in {report['seconds']:.1f} s ({report['input'] / report['seconds']:.2f} " \
                     "images/s)"
    elif report.get("task_seconds"):
        lines[-1] += f"; {len(report.get('tasks', []))} tasks ran {report['task_seconds']:.1f} s " \
                     "in total"
    return "\n".join(lines)


def _tile(thumb: np.ndarray | None, caption: str, side: int) -> Image.Image:
    tile = Image.new("RGB", (side, side + 14), (40, 40, 40))
    draw = ImageDraw.Draw(tile)
    if thumb is None:  # no pixels to show (corrupt file): a placeholder with the name
        draw.rectangle([4, 4, side - 5, side - 5], outline=(200, 60, 60), width=2)
        draw.text((10, side // 2 - 12), "unreadable", fill=(230, 230, 230))
        draw.text((10, side // 2 + 2), caption[:14], fill=(230, 230, 230))
    else:
        im = Image.fromarray(thumb)
        im.thumbnail((side, side))
        tile.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    draw.text((2, side + 1), caption[:16], fill=(255, 255, 255))
    return tile


def contact_sheet(samples: Iterable[tuple[str, np.ndarray | None]],
                  side: int = THUMB_SIDE, columns: int = 4) -> Image.Image:
    """A grid of up to 16 (caption, thumbnail) tiles; ``None`` thumbnails become placeholders."""
    tiles = [_tile(t, caption, side) for caption, t in list(samples)[:SAMPLES_PER_REASON]]
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * (side + 2), rows * (side + 16)), (0, 0, 0))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (side + 2), (i // columns) * (side + 16)))
    return sheet


def write_contact_sheets(report: dict[str, Any], base: Path, out_dir: Path,
                         bases: dict[str, Path] | None = None) -> list[str]:
    """``contact_sheet_<reason>.png`` in ``out_dir`` for every reason of ``report["samples"]``;
    thumbnails are read relative to ``base`` (or ``bases[file]`` for merged reports)."""
    written = []
    for reason, entries in report["samples"].items():
        tiles = []
        for e in entries[:SAMPLES_PER_REASON]:
            root = (bases or {}).get(e["file"], base)
            thumb = np.asarray(Image.open(root / e["thumbnail"]).convert("RGB")) \
                if e["thumbnail"] else None
            tiles.append((Path(e["file"]).name, thumb))
        name = f"contact_sheet_{reason_slug(reason)}.png"
        contact_sheet(tiles).save(out_dir / name)
        written.append(name)
    return written


def save_report(report: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_report(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def merge_reports(task_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    """Combine the reports of the tasks of a job array (``task_dirs`` in task order) into
    ``out_dir/report.json`` plus contact sheets; counts add up, file lists concatenate."""
    reports = [load_report(d / "report.json") for d in task_dirs]
    if not reports:
        raise ValueError(f"no task reports to merge in {out_dir}")
    first = reports[0]
    merged: dict[str, Any] = {"version": REPORT_VERSION, "input": 0, "output": 0,
                              "steps": [dict(s, reasons={}, **{"in": 0, "kept": 0, "dropped": 0})
                                        for s in first["steps"]],
                              "dropped": [], "kept": [], "samples": {}, "shards": [],
                              "tasks": [str(d.relative_to(out_dir)) for d in task_dirs],
                              "settings": first.get("settings", {}),
                              "task_seconds": 0.0}
    bases: dict[str, Path] = {}
    for d, r in zip(task_dirs, reports):
        if [s["step"] for s in r["steps"]] != [s["step"] for s in merged["steps"]]:
            raise ValueError(f"{d}: the task ran other steps than {task_dirs[0]}; not merged")
        for key in ("input", "output"):
            merged[key] += r[key]
        merged["task_seconds"] += r.get("seconds", 0.0)  # summed: tasks may run side by side
        for m, s in zip(merged["steps"], r["steps"]):
            for key in ("in", "kept", "dropped"):
                m[key] += s[key]
            for reason, n in s["reasons"].items():
                m["reasons"][reason] = m["reasons"].get(reason, 0) + n
        merged["dropped"] += r["dropped"]
        merged["kept"] += r["kept"]
        merged["shards"] += r.get("shards", [])
        if r.get("heldout"):
            held = merged.setdefault("heldout", dict(r["heldout"], count=0, shards=[]))
            held["count"] += r["heldout"]["count"]
            held["shards"] += r["heldout"]["shards"]
        for reason, entries in r["samples"].items():
            room = SAMPLES_PER_REASON - len(merged["samples"].get(reason, []))
            for e in entries[:max(0, room)]:
                merged["samples"].setdefault(reason, []).append(e)
                bases[e["file"]] = d
    merged["contact_sheets"] = write_contact_sheets(merged, out_dir, out_dir, bases)
    # thumbnails stay in the task folders: make the merged paths point there
    for entries in merged["samples"].values():
        for e in entries:
            if e["thumbnail"]:
                e["thumbnail"] = str((bases[e["file"]] / e["thumbnail"]).relative_to(out_dir))
    save_report(merged, out_dir / "report.json")
    return merged
