"""``FacesDataset``: a lazy, parallel pipeline from folders of photos to TFRecord shards.

    report = (FacesDataset.load(["photos/"])
              .filter(size_filter, min_size=128)
              .filter(color_filter)
              .apply(extract_face, resolution=64)
              .filter(quality_filter)
              .filter_window(remove_too_similar, window_size=1000, similarity_threshold=0.1)
              .apply(convert_to_rgb)
              .create("data/faces64", shard_size=2000, workers=4))

Building the chain does nothing; :meth:`FacesDataset.outcomes` (and :meth:`create`) stream the
files through it. Consecutive per-item steps form a *segment* that runs in a pool of worker
processes (``workers``), with a bounded number of items in flight; a window step runs in the
parent process, in input order, holding at most ``window_size`` kept items — so the output is
the same for any number of workers, and memory does not grow with the folder. For large folders
``load(..., shard_index=i, shard_count=n)`` takes the i-th of n contiguous blocks of the sorted
file list: one task of a SLURM job array (see :mod:`setup.commands.dataset`).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import importlib
import json
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from models.faces import FaceModelsMissingError

from .items import Drop, Item, thumbnail
from .output import ShardWriter
from .report import ReportBuilder, format_table, save_report, write_contact_sheets
from .steps import load_item

#: Files the pipeline reads (by name; the content is sniffed by load_image). Other files in the
#: source folders (READMEs, CSVs) are not images and are not reported.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Step:
    """One step of the chain: ``kind`` is ``"filter"``, ``"apply"`` or ``"window"``."""

    kind: Literal["load", "filter", "apply", "window"]
    fn: Callable
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    window_size: int = 0


@dataclass
class Outcome:
    """What became of one input file: ``item`` when kept so far, else the ``drop``, the index of
    the step that dropped it and a thumbnail of the image at that point (None if unreadable)."""

    path: str
    item: Item | None = None
    step: int | None = None
    drop: Drop | None = None
    thumb: Any = None


def list_files(sources: Iterable[str | os.PathLike]) -> list[str]:
    """Image files under the given folders (recursively) or given directly, sorted and unique."""
    found = set()
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found.update(str(p) for p in source.rglob("*")
                         if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif source.is_file():
            found.add(str(source))
        else:
            raise FileNotFoundError(f"dataset source {source} does not exist")
    return sorted(found)


def shard_files(files: Sequence[str], shard_index: int, shard_count: int) -> list[str]:
    """The ``shard_index``-th of ``shard_count`` contiguous blocks of ``files`` (contiguous, so
    near-duplicates that sort together stay in one task's window)."""
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index {shard_index} is not in 0..{shard_count - 1}")
    n = len(files)
    return list(files[shard_index * n // shard_count:(shard_index + 1) * n // shard_count])


# -- running a segment of per-item steps (in a worker or inline) --------------------------------

_WORKER_SEGMENTS: list[list[tuple[int, Step]]] = []


def _init_worker(segments: list[list[tuple[int, Step]]]) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: no nested thread pools
    _WORKER_SEGMENTS[:] = segments


def _worker_run(segment_id: int, payload: str | Item) -> Outcome:
    return run_segment(_WORKER_SEGMENTS[segment_id], payload)


def run_segment(steps: list[tuple[int, Step]], payload: str | Item) -> Outcome:
    """Run per-item ``steps`` (with their indices in the chain) on a path or an item."""
    item: Item | Drop | None = payload if isinstance(payload, Item) else None
    path = payload.path if isinstance(payload, Item) else payload
    last_image = item.image if isinstance(item, Item) else None
    for index, step in steps:
        try:
            if step.kind == "load":
                result = step.fn(path, **step.params)
            elif step.kind == "filter":
                result = step.fn(item, **step.params) or item
            else:
                result = step.fn(item, **step.params)
        except FaceModelsMissingError:
            raise  # an installation problem, not this photo's: stop the build
        except Exception as e:  # a step's bug on one odd photo must not end a long build
            result = Drop("error", f"{step.name}: {type(e).__name__}: {e}")
        if isinstance(result, Drop):
            return Outcome(path, step=index, drop=result, thumb=thumbnail(last_image))
        if not isinstance(result, Item):
            return Outcome(path, step=index, drop=Drop(
                "error", f"{step.name} returned {type(result).__name__}, not an Item or Drop"),
                thumb=thumbnail(last_image))
        item, last_image = result, result.image
    return Outcome(path, item=item)


def _ordered(submit: Callable[[Outcome | str], Any], source: Iterable[Outcome | str],
             max_in_flight: int) -> Iterator[Outcome]:
    """Submit the live payloads of ``source`` with ``submit`` (a future or a value), yield the
    outcomes in input order, with at most ``max_in_flight`` pending (this bounds memory)."""
    pending: collections.deque = collections.deque()
    for x in source:
        if isinstance(x, Outcome) and x.item is None:
            pending.append(x)  # dropped upstream: passes through, in order
        else:
            pending.append(submit(x.item if isinstance(x, Outcome) else x))
        while len(pending) > max_in_flight or (pending and _ready(pending[0])):
            yield _value(pending.popleft())
    while pending:
        yield _value(pending.popleft())


def _ready(x: Any) -> bool:
    return not isinstance(x, cf.Future) or x.done()


def _value(x: Any) -> Outcome:
    return x.result() if isinstance(x, cf.Future) else x


def _windowed(step: Step, index: int, source: Iterable[Outcome]) -> Iterator[Outcome]:
    window: collections.deque[Item] = collections.deque(maxlen=step.window_size)
    for outcome in source:
        if outcome.item is not None:
            try:
                drop = step.fn(outcome.item, window, **step.params)
            except FaceModelsMissingError:
                raise
            except Exception as e:
                drop = Drop("error", f"{step.name}: {type(e).__name__}: {e}")
            if drop is None:
                window.append(outcome.item)
            else:
                outcome = Outcome(outcome.path, step=index, drop=drop,
                                  thumb=thumbnail(outcome.item.image))
        yield outcome


class FacesDataset:
    """An immutable chain of steps over a sorted list of files (see the module docstring)."""

    def __init__(self, files: Sequence[str], steps: Sequence[Step] = (),
                 settings: dict[str, Any] | None = None):
        self.files = list(files)
        self.steps = list(steps) or [Step("load", load_item, {}, "load")]
        self.settings = dict(settings or {})

    @classmethod
    def load(cls, sources: str | os.PathLike | Iterable[str | os.PathLike],
             shard_index: int = 0, shard_count: int = 1,
             max_pixels: int | None = None) -> "FacesDataset":
        """Image files under ``sources`` (folders, searched recursively, or files), sorted;
        with ``shard_count`` > 1 only the ``shard_index``-th contiguous block. Corrupt files are
        kept in the list: the load step drops them with reason ``corrupt``."""
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        sources = [str(s) for s in sources]
        files = shard_files(list_files(sources), shard_index, shard_count)
        params = {"max_pixels": max_pixels} if max_pixels else {}
        return cls(files, [Step("load", load_item, params, "load")],
                   {"sources": sources, "shard_index": shard_index, "shard_count": shard_count})

    def _with(self, step: Step) -> "FacesDataset":
        names = [s.name for s in self.steps]
        name = step.name
        n = 2
        while name in names:
            name, n = f"{step.name}#{n}", n + 1
        return FacesDataset(self.files, [*self.steps, Step(step.kind, step.fn, step.params, name,
                                                            step.window_size)], self.settings)

    def filter(self, fn: Callable[..., Drop | None], **params: Any) -> "FacesDataset":
        """Add a filter step: ``fn(item, **params)`` returns a :class:`Drop` or None (keep)."""
        return self._with(Step("filter", fn, params, fn.__name__))

    def apply(self, fn: Callable[..., Item | Drop], **params: Any) -> "FacesDataset":
        """Add a transformation: ``fn(item, **params)`` returns the (new) item or a Drop."""
        return self._with(Step("apply", fn, params, fn.__name__))

    def filter_window(self, fn: Callable[..., Drop | None], window_size: int = 1000,
                      **params: Any) -> "FacesDataset":
        """Add a windowed filter: ``fn(item, window, **params)`` sees the last ``window_size``
        kept items; runs in the parent process, in input order (deterministic)."""
        if window_size < 1:
            raise ValueError("window_size must be at least 1")
        return self._with(Step("window", fn, params, fn.__name__, window_size))

    def _segments(self) -> list[list[tuple[int, Step]]]:
        segments: list[list[tuple[int, Step]]] = []
        for index, step in enumerate(self.steps):
            if step.kind == "window" or not segments or segments[-1][-1][1].kind == "window":
                segments.append([])
            segments[-1].append((index, step))
        return segments

    def outcomes(self, workers: int = 1) -> Iterator[Outcome]:
        """Stream every file through the chain; one :class:`Outcome` per file, in input order.
        ``workers`` > 1 runs the per-item steps in that many processes."""
        segments = self._segments()
        executor = None
        if workers > 1:
            executor = cf.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(segments,))
        try:
            stream: Iterable[Any] = self.files
            for seg_id, segment in enumerate(segments):
                if segment[0][1].kind == "window":
                    stream = _windowed(segment[0][1], segment[0][0], stream)
                elif executor is not None:
                    stream = _ordered(lambda x, s=seg_id: executor.submit(_worker_run, s, x),
                                      stream, max_in_flight=4 * workers)
                else:
                    stream = _ordered(lambda x, s=segment: run_segment(s, x), stream, 1)
            yield from stream
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[Item]:
        """The kept items, in input order (one process)."""
        return (o.item for o in self.outcomes() if o.item is not None)

    def create(self, out_dir: str | os.PathLike, shard_size: int = 2000, workers: int = 1,
               progress: bool = True, verbose: bool = True,
               holdout: float = 0.0) -> dict[str, Any]:
        """Run the chain and write shards, ``report.json`` and contact sheets; returns the report.

        ``holdout`` (0 – 0.5): that share of the kept faces goes to ``out_dir/heldout/`` instead,
        for the quality metrics (``ligan train … --metrics out_dir/heldout``); the trainer reads
        only ``out_dir``'s own shards. A face is held out by the hash of its file name, so the
        split does not depend on the order, the workers or where the data lives, and the tasks
        of a job array agree on it.

        One run (``shard_count`` 1) writes ``data-*.tfrecord``, ``report.json`` and
        ``contact_sheet_<reason>.png`` in ``out_dir``. A task of a job array writes
        ``data-taskIIIIofNNNN-*.tfrecord`` in ``out_dir`` (so the trainer reads all tasks' shards
        from one folder) and its report under ``out_dir/tasks/taskIIIIofNNNN/``; combine those
        with :func:`merge`.
        """
        if not 0.0 <= holdout <= 0.5:
            raise ValueError(f"the held-out share must be from 0 to 0.5, got {holdout}")
        out = Path(out_dir)
        index, count = self.settings.get("shard_index", 0), self.settings.get("shard_count", 1)
        prefix, report_dir = "data", out
        if count > 1:
            tag = f"task{index:04d}of{count:04d}"
            prefix, report_dir = f"data-{tag}", out / "tasks" / tag
        report_dir.mkdir(parents=True, exist_ok=True)
        stale = re.compile(rf"^{re.escape(prefix)}-\d{{5}}-of-\d{{5}}\.tfrecord(\.tmp)?$")
        heldout_dir = out / HELDOUT_FOLDER
        for folder in (out, heldout_dir):
            for old in (folder.iterdir() if folder.is_dir() else ()):
                if stale.match(old.name) or re.match(
                        rf"^{re.escape(prefix)}-\d{{5}}\.tfrecord\.tmp$", old.name):
                    old.unlink()  # a re-run replaces its own earlier shards, nobody else's
        for old in report_dir.glob("contact_sheet_*.png"):  # and its report's sheets, samples
            old.unlink()
        shutil.rmtree(report_dir / "rejected", ignore_errors=True)
        builder = ReportBuilder([s.name for s in self.steps],
                                [_jsonable(s.params, s.window_size) for s in self.steps])
        writer = ShardWriter(out, shard_size, prefix)
        held_writer = None
        if holdout:
            heldout_dir.mkdir(exist_ok=True)
            held_writer = ShardWriter(heldout_dir, shard_size, prefix)
        importlib.import_module("tensorflow")  # the shard writer's: load before the clock starts
        start = time.monotonic()
        stream = self.outcomes(workers)
        if progress:
            from tqdm import tqdm

            stream = tqdm(stream, total=len(self.files), unit="img", desc="dataset")
        for outcome in stream:
            if outcome.item is not None:
                if held_writer is not None and held_out(outcome.path, holdout):
                    held_writer.write(outcome.item)
                else:
                    writer.write(outcome.item)
                builder.add_kept(outcome.path)
            else:
                builder.add_drop(outcome.path, outcome.step, outcome.drop, outcome.thumb)
        shards = writer.close()
        held = {"share": holdout, "folder": HELDOUT_FOLDER, "count": held_writer.count,
                "shards": held_writer.close()} if held_writer is not None else None
        seconds = time.monotonic() - start
        report = builder.finish(report_dir, {
            "shards": shards, "heldout": held,
            "settings": {**self.settings, "workers": workers, "shard_size": shard_size,
                         "holdout": holdout},
            "seconds": round(seconds, 3),
            "images_per_second": round(len(self.files) / seconds, 3) if seconds else None})
        report["contact_sheets"] = write_contact_sheets(report, report_dir, report_dir)
        save_report(report, report_dir / "report.json")
        if verbose:
            print(format_table(report))
        return report


HELDOUT_FOLDER = "heldout"


def held_out(path: str | os.PathLike, share: float) -> bool:
    """Whether the face from ``path`` belongs to the held-out share: decided by the SHA-256 of
    the file's name alone, so every run and every task of an array decides alike."""
    digest = hashlib.sha256(os.path.basename(os.fsdecode(path)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def _jsonable(params: dict[str, Any], window_size: int) -> dict[str, Any]:
    out = json.loads(json.dumps(params, default=repr))
    if window_size:
        out["window_size"] = window_size
    return out


def merge(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Merge the task reports of a job array under ``out_dir/tasks/`` into ``out_dir/report.json``
    and contact sheets. Refuses when tasks are missing (their shards would be missing too)."""
    from .report import merge_reports

    out = Path(out_dir)
    task_dirs = sorted(p for p in (out / "tasks").glob("task*of*") if p.is_dir())
    if not task_dirs:
        raise ValueError(f"no task reports under {out / 'tasks'}")
    counts = {int(re.search(r"of(\d+)$", p.name).group(1)) for p in task_dirs}
    done = [p for p in task_dirs if (p / "report.json").is_file()]
    expected = max(counts)
    if len(counts) > 1 or len(done) != expected:
        raise ValueError(f"{len(done)} of {expected} task reports in {out / 'tasks'}: wait for "
                         "the missing tasks (or re-run them) before merging")
    return merge_reports(done, out)
