"""Reference runner: CPU throughput of NVIDIA's StyleGAN2-ADA PyTorch generator.

Companion to tests/bench/generator.py, which runs this script side by side with
our TensorFlow generator. It builds ``training.networks.Generator`` from the
official stylegan2-ada-pytorch code (random init, eval mode, no_grad,
noise_mode='const', truncation_psi=1) and prints ONE JSON line on stdout:

    {"implementation": "stylegan2-ada-pytorch", "torch": ..., "threads": n,
     "results": [{"resolution": R, "batch": B, "images_per_s": ...,
                  "peak_rss_mb": ..., "base_rss_mb": ...}, ...]}

Progress goes to stderr. The reference code is never committed to this repo and
nothing of it is copied here: it is imported at run time from --ada-root.
To obtain it (outside this repo) and a matching CPU-only environment:

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /work/ref/stylegan2-ada-pytorch
    python3 -m venv /work/ref/venv && /work/ref/venv/bin/pip install torch==2.13.0 numpy
    /work/ref/venv/bin/python tests/bench/reference_stylegan2_ada.py \
        --ada-root /work/ref/stylegan2-ada-pytorch --resolutions 64 --batches 1 8 32

Memory: every (resolution, batch) config runs in a fresh subprocess of this
script, so ``peak_rss_mb`` is that process's own ru_maxrss (torch runtime +
model + activations of that config only). ``base_rss_mb`` is the RSS after
importing torch and the reference, before building the model; subtract it to
get the increase caused by the config.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _import_generator(ada_root: str) -> Any:
    """Import the reference Generator class, with shims for a modern stack."""
    # dnnlib/util.py imports `requests` (only used to download pickles) and
    # `distutils.util.strtobool` (distutils is gone in Python >= 3.12).
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    try:
        import distutils.util  # noqa: F401
    except ImportError:
        pkg, util = types.ModuleType("distutils"), types.ModuleType("distutils.util")
        util.strtobool = lambda v: int(str(v).lower() in ("y", "yes", "t", "true", "on", "1"))
        pkg.util = util
        sys.modules.update({"distutils": pkg, "distutils.util": util})
    sys.path.insert(0, ada_root)
    from training.networks import Generator  # type: ignore[import-not-found]
    # The custom CUDA plugins (bias_act, upfirdn2d) are only built for CUDA
    # tensors; on CPU the reference implementations run and nothing compiles.
    # conv2d_gradfix / grid_sample_gradfix are disabled by default: no patch.
    return Generator


def run_config(args: argparse.Namespace, res: int, batch: int) -> dict[str, Any]:
    """Build one generator and time it; runs inside a per-config subprocess."""
    import torch

    torch.set_num_threads(args.threads)
    Generator = _import_generator(args.ada_root)
    base = _rss_mb()
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=args.channel_base,
                                        channel_max=args.channel_max,
                                        num_fp16_res=0, conv_clamp=None)).eval()
    z = torch.randn(batch, 512)
    with torch.no_grad():
        img = G(z, None, truncation_psi=1, noise_mode="const")  # warm-up
        assert img.shape == (batch, 3, res, res), img.shape
        calls, t0 = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - t0 < args.seconds:
            G(z, None, truncation_psi=1, noise_mode="const")
            calls += 1
        elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"resolution": res, "batch": batch,
            "images_per_s": round(calls * batch / elapsed, 3),
            "peak_rss_mb": round(peak, 1), "base_rss_mb": round(base, 1),
            "calls": calls, "seconds": round(elapsed, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ada-root", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--resolutions", type=int, nargs="+", default=[64])
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", type=int, nargs=2, metavar=("RES", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:  # one config, in its own process; prints its result row
        print(json.dumps(run_config(args, *args.child)), flush=True)
        return

    base_cmd = [sys.executable, __file__, "--ada-root", args.ada_root,
                "--channel-base", str(args.channel_base), "--channel-max", str(args.channel_max),
                "--seconds", str(args.seconds), "--threads", str(args.threads)]
    results = []
    for res in args.resolutions:
        for batch in args.batches:
            print(f"[ref] res={res} batch={batch} ...", file=sys.stderr, flush=True)
            out = subprocess.run(base_cmd + ["--child", str(res), str(batch)],
                                 stdout=subprocess.PIPE, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"[ref]   {row['images_per_s']:.3f} img/s, peak RSS {row['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
            results.append(row)
    import torch

    print(json.dumps({"implementation": "stylegan2-ada-pytorch", "torch": torch.__version__,
                      "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
