"""Guided vs. blind sampling of faces that match an attribute filter, measured in one run.

For one bundle (with an attributes part; directions are fitted first when it has none) and one
filter, ``generate_matching`` runs twice with the same seed and the same ``n``: *guided*
(many latents mapped to W, ranked by the fitted boundaries' joint estimate that they match,
the best rendered and classified) and *blind* (plain sampling, then classified). Both count every rendered candidate;
the figure of merit is candidates per accepted face, and the ratio blind ÷ guided (goal from the
issue: at least 5×). When blind sampling reaches ``--max-candidates`` before ``n`` faces, its
rate is a lower bound (printed with "≥"). Wall time is printed too, for information only.

The number means what the classifier and the generator make it mean: on an untrained generator
and a briefly trained classifier it measures the machinery, not real attributes.

Run from the repository root::

    .venv/bin/python tests/bench/attributes.py --bundle BUNDLE \\
        --where "men, 40-49, beard, no glasses, not smiling" -n 20 --max-candidates 4000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--where", required=True)
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--max-candidates", type=int, default=4000)
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--psi", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-samples", type=int, default=2000,
                        help="samples for fitting directions when the bundle has none")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from models.runtime import configure_tensorflow

    configure_tensorflow(args.threads, 1)
    from models.attributes import (Directions, fit_directions, generate_matching, parse_filter,
                                   save_directions)
    from models.bundle import BundleError, load_bundle

    spec = parse_filter(args.where)
    bundle = load_bundle(args.bundle)
    try:
        Directions.from_bundle(bundle)
    except BundleError:
        print(f"fitting directions on {args.fit_samples} samples …")
        save_directions(bundle, fit_directions(bundle, args.fit_samples, args.psi, args.seed))
        bundle = load_bundle(args.bundle)
    rows = {}
    for mode in ("guided", "blind"):
        start = time.monotonic()
        res = generate_matching(bundle, spec, args.n, guided=mode == "guided",
                                max_candidates=args.max_candidates, psi=args.psi,
                                pool=args.pool, margin=args.margin, seed=args.seed)
        rows[mode] = {"accepted": res.accepted, "candidates": res.candidates,
                      "per_face": res.candidates / max(res.accepted, 1),
                      "complete": res.accepted == args.n, "unguided": res.unguided,
                      "latents_drawn": res.latents_drawn,
                      "seconds": round(time.monotonic() - start, 2)}
    g, b = rows["guided"], rows["blind"]
    ratio = b["per_face"] / g["per_face"]
    # An incomplete blind run only bounds its rate from below (and so the ratio); an
    # incomplete guided run with no accepted face leaves the ratio undetermined.
    bound = "" if b["complete"] else "≥ "
    print(f"filter: {spec.describe()}   n = {args.n}   max candidates = {args.max_candidates}")
    for mode, r in rows.items():
        tag = "" if r["complete"] else f"  (stopped at the limit with {r['accepted']})"
        print(f"  {mode:6s}: {r['candidates']:6d} candidates for {r['accepted']:4d} faces = "
              f"{r['per_face']:8.2f} per face, {r['seconds']:.1f} s{tag}")
    if g["unguided"]:
        print(f"  no direction for: {', '.join(g['unguided'])} (rejection only)")
    print(f"  guided drew {g['latents_drawn']} latents (mapped to W, not rendered) to choose "
          f"its {g['candidates']} candidates")
    if g["accepted"] == 0 or (not g["complete"] and not b["complete"]):
        print("  blind / guided: undetermined (raise --max-candidates)")
    else:
        print(f"  blind / guided candidates per face: {bound}{ratio:.1f}×   (goal ≥ 5×: "
              f"{'met' if ratio >= 5 else 'not met'})")
    if args.json:
        args.json.write_text(json.dumps({"filter": args.where, "n": args.n, **rows,
                                         "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
