"""Building training datasets from folders of photos: a lazy, parallel pipeline of plain steps
(size, colour, face extraction and alignment, quality, identity near-duplicates) that writes
TFRecord shards plus a report of every drop and why. See ``docs/dataset.md``::

    FacesDataset.load(folders).filter(size_filter, min_size=128).filter(color_filter) \\
        .apply(extract_face, resolution=64).filter(quality_filter) \\
        .filter_window(remove_too_similar, window_size=1000, similarity_threshold=0.1) \\
        .apply(convert_to_rgb).create("data/faces64", workers=2)
"""
from .items import Drop, Item, parse_labels
from .pipeline import FacesDataset, Outcome, list_files, merge, shard_files
from .report import drop_reasons, format_table, load_report
from .steps import (DEFAULT_SIMILARITY_THRESHOLD, color_filter, convert_to_rgb, extract_face,
                    load_item, quality_filter, remove_too_similar, size_filter)

__all__ = [
    "Drop", "Item", "parse_labels",
    "FacesDataset", "Outcome", "list_files", "merge", "shard_files",
    "drop_reasons", "format_table", "load_report",
    "DEFAULT_SIMILARITY_THRESHOLD", "color_filter", "convert_to_rgb", "extract_face",
    "load_item", "quality_filter", "remove_too_similar", "size_filter",
]
