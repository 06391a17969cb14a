"""The dlib models, loaded lazily once per process from the ``face_recognition_models`` package.

Nothing is downloaded: the HOG face detector is built into dlib, and the CNN (MMOD) detector,
the 5- and 68-point landmark predictors and the 128-d ResNet identity model are the files that
``face_recognition_models`` installs. The package's ``__init__`` imports ``pkg_resources``
(removed from recent setuptools), so its directory is located with ``importlib.util.find_spec``
without importing it.

dlib's networks keep per-call state and its Python bindings make no thread-safety promise, so
every model is paired with a lock that callers hold while using it (:func:`use`).
"""
from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FaceModelsMissingError

MODEL_FILES = {
    "cnn_detector": "mmod_human_face_detector.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "identity": "dlib_face_recognition_resnet_model_v1.dat",
}

_registry_lock = threading.Lock()
_models: dict[str, tuple[Any, threading.Lock]] = {}


def _import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise FaceModelsMissingError(
            "dlib is not installed; install it with 'pip install dlib-bin' (prebuilt wheels) "
            "or reinstall LiGAN.") from e
    return dlib


def model_dir() -> Path:
    """Directory holding the dlib ``.dat`` files of the ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissingError(
            "the dlib face models are not installed; install them with "
            "'pip install face_recognition_models' or reinstall LiGAN.")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    """Path of one model file (``name`` is a key of :data:`MODEL_FILES`)."""
    path = model_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise FaceModelsMissingError(f"the dlib model file {path} is missing; reinstall "
                                     "face_recognition_models.")
    return path


def _loaders() -> dict[str, Callable[[], Any]]:
    dlib = _import_dlib()
    return {
        "hog_detector": dlib.get_frontal_face_detector,
        "cnn_detector": lambda: dlib.cnn_face_detection_model_v1(str(model_path("cnn_detector"))),
        "landmarks5": lambda: dlib.shape_predictor(str(model_path("landmarks5"))),
        "landmarks68": lambda: dlib.shape_predictor(str(model_path("landmarks68"))),
        "identity": lambda: dlib.face_recognition_model_v1(str(model_path("identity"))),
    }


def get(name: str) -> tuple[Any, threading.Lock]:
    """The model ``name`` and its lock, loading it on first use (once, even under threads)."""
    entry = _models.get(name)
    if entry is None:
        with _registry_lock:
            entry = _models.get(name)
            if entry is None:
                entry = (_loaders()[name](), threading.Lock())
                _models[name] = entry
    return entry


@contextmanager
def use(name: str) -> Iterator[Any]:
    """``with use("landmarks68") as predictor: ...`` — the model, held exclusively."""
    model, lock = get(name)
    with lock:
        yield model


def dlib_module():
    """The imported ``dlib`` module (a clear error if it is missing)."""
    return _import_dlib()
