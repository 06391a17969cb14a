"""Face attributes: the classifier, its training data, W directions, filters and edits.

See ``docs/attributes.md``. Typical use with a bundle that has an ``attributes`` part::

    preds = predict_attributes(bundle, images)           # per face: label + probabilities
    spec = parse_filter("men, 40-49, beard, no glasses, not smiling")
    keep = filter_faces(preds, spec)
    found = generate_matching(bundle, spec, n=8)          # guided sampling + rejection
    ws = edit(ws, Directions.from_bundle(bundle).get("smiling"), strength=2.0, layers=[4, 5])
"""
from __future__ import annotations

import importlib
from typing import Any

# Names are imported on first use (PEP 562) so that importing ``setup.commands.attributes``
# for ``ligan --help`` does not load TensorFlow.
_EXPORTS = {
    "directions": ("Direction", "Directions", "direction_keys", "edit", "fit_directions",
                   "save_directions"),
    "filter": ("Constraint", "FilterError", "FilterSpec", "MatchResult", "filter_faces",
               "generate_matching", "matches", "parse_filter"),
    "heads": ("AGE_GROUPS", "BINARY_TRAITS", "CELEBA_HEADS", "CLASS_HEADS", "ETHNICITIES",
              "GENDERS", "HAIR_COLOURS", "READ_CLASSES", "TRAITS"),
    "model": ("ATTRIBUTES_PART", "AttributeConfig", "AttributeModel", "load_attribute_model",
              "predict_attributes"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'models.attributes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"models.attributes.{_MODULE_OF[name]}"), name)
