"""How long the whole default bundle takes to load on this machine (goal: under 10 s on the CPU).

Times, in one process and one run: verifying every file's sha256 and reading the manifest;
building generator and discriminator and loading their weights; the encoder, the attribute model
and the PCA; and the first face rendered (graph tracing included), which is what a backend
spends before it reports ready. The reference measured in the same run is the raw cost of
reading every weights file with NumPy, the floor any loader has to pay; the summary prints the
load time as a multiple of it and as a share of the 10 s goal.

    python tests/bench/bundle_load.py [--bundle models/bundles/default] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import common  # noqa: F401  (sys.path, quiet TensorFlow)
from common import REPO, say

GOAL_S = 10.0


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "bundles" / "default")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    import numpy as np

    from models.bundle import KNOWN_PARTS, load_bundle, read_manifest

    manifest = read_manifest(args.bundle)
    files = [args.bundle / spec["file"] for spec in manifest["parts"].values()]

    def read_raw():
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                for k in z.files:
                    z[k]
    _, raw_s = _timed(read_raw)

    import tensorflow as tf  # noqa: F401  (the import is not part of loading a bundle)

    times: dict[str, float] = {}
    start = time.perf_counter()
    bundle, times["verify + generator + discriminator"] = _timed(
        lambda: load_bundle(args.bundle, parts=[p for p in ("generator", "discriminator")
                                                if p in manifest["parts"]]))
    if bundle.has_part("encoder"):
        from models.encoder import load_encoder
        _, times["encoder"] = _timed(lambda: load_encoder(bundle))
    if bundle.has_part("attributes"):
        from models.attributes.model import load_attribute_model
        _, times["attribute model"] = _timed(lambda: load_attribute_model(bundle))
    if bundle.has_part("pca"):
        from models.latent import LatentPCA
        _, times["pca"] = _timed(lambda: LatentPCA.from_bundle(bundle))
    g = bundle.generator
    z = np.random.default_rng(0).standard_normal((1, g.cfg.z_dim)).astype(np.float32)
    _, times["first face (tracing)"] = _timed(lambda: g.synthesize(g.map_compiled(z, 0.7)).numpy())
    total = time.perf_counter() - start

    parts = [p for p in KNOWN_PARTS if p in manifest["parts"]]
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"bundle {args.bundle} ({manifest.get('name')}): parts {', '.join(parts)}; "
          f"{size_mb:.1f} MB of weights")
    for name, seconds in times.items():
        print(f"  {name:36s} {seconds:7.2f} s")
    print(f"  {'total':36s} {total:7.2f} s")
    print(f"reference: reading the raw weights with NumPy {raw_s:.3f} s")
    print(f"load ÷ raw read: {total / raw_s:.1f}×; load ÷ goal ({GOAL_S:.0f} s): "
          f"{total / GOAL_S:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"bundle": str(args.bundle), "parts": parts,
                                         "megabytes": size_mb, "seconds": times,
                                         "total_s": total, "raw_read_s": raw_s,
                                         "goal_s": GOAL_S}, indent=2) + "\n")
    say("done")
    return 0 if total < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
