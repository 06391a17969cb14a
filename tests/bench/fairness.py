"""How long the lineup fairness measures take for 10 000 mock witnesses (goal: well under 1 s).

Times, in one process and one run, ``models.fairness.analyse_choices`` on 10 000 random
choices of a 6-member lineup (a Python list, as the CSV reader returns it), bootstrap of 2 000
resamples included, and ``read_choices_csv`` of the same choices as a 10 000-row file (what
``ligan lineup analyse`` adds). The references measured beside them: ``np.bincount`` of the same
choices (the floor: counting them) and the measures for 100 witnesses (what grows with N).
Each time is the median of ``--repeats`` runs.

The builder's live panel (``models.simulated_witnesses.simulate``: both simulated witnesses and
the members that stand out, 12 members, 200 simulated witnesses each, as
``POST /web/lineups/simulation`` runs it) is timed against its goal of 300 ms, with the measures
of 200 real witnesses beside it as the reference.

    python tests/bench/fairness.py [--witnesses 10000] [--bootstrap 2000] [--repeats 21]
                                   [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import say  # noqa: E402 - puts the repository on sys.path

GOAL_S = 1.0
PANEL_GOAL_S = 0.3


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--witnesses", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=6, help="lineup members")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples of E'")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    import numpy as np

    from models.fairness import analyse_choices, read_choices_csv

    rng = np.random.default_rng(0)
    # a lineup slightly biased towards the suspect at 3: not a degenerate table
    weights = np.ones(args.size)
    weights[2] = 1.5
    choices = (rng.choice(args.size, size=args.witnesses, p=weights / weights.sum()) + 1).tolist()
    small = choices[:100]
    array = np.asarray(choices)
    say(f"{args.witnesses} witnesses, {args.size} members, {args.bootstrap} resamples, "
        f"{args.repeats} repeats")

    def measures(c):
        return lambda: analyse_choices(c, args.size, 3, bootstrap=args.bootstrap, seed=0)

    bincount_s = median_time(lambda: np.bincount(array, minlength=args.size + 1), args.repeats)
    small_s = median_time(measures(small), args.repeats)
    full_s = median_time(measures(choices), args.repeats)
    no_boot_s = median_time(lambda: analyse_choices(choices, args.size, 3, bootstrap=0),
                            args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "choices.csv"
        path.write_text("witness,choice\n" + "".join(f"w{i},{c}\n" for i, c in
                                                     enumerate(choices, start=1)))
        csv_s = median_time(lambda: read_choices_csv(path, size=args.size), args.repeats)
        assert read_choices_csv(path, size=args.size)[0] == choices
    result = analyse_choices(choices, args.size, 3, bootstrap=args.bootstrap, seed=0)
    panel_s, panel_ref_s = panel_times(args.repeats)

    cli_s = csv_s + full_s
    print(f"lineup fairness measures, {args.witnesses} witnesses, {args.size} members "
          f"(median of {args.repeats} runs)")
    rows = [
        (f"measures with bootstrap ({args.bootstrap})", f"{1000 * full_s:8.2f} ms"),
        ("measures without bootstrap", f"{1000 * no_boot_s:8.2f} ms"),
        ("reading the CSV file", f"{1000 * csv_s:8.2f} ms"),
        ("reference: np.bincount", f"{1000 * bincount_s:8.3f} ms (measures ÷ bincount: "
                                   f"{full_s / bincount_s:.0f}×)"),
        ("reference: measures, 100 witnesses", f"{1000 * small_s:8.2f} ms ({args.witnesses} ÷ "
                                               f"100 witnesses: {full_s / small_s:.2f}×)"),
        ("live panel: simulated witnesses", f"{1000 * panel_s:8.2f} ms (÷ the measures of 200 "
                                            f"real witnesses: {panel_s / panel_ref_s:.1f}×; "
                                            f"goal {1000 * PANEL_GOAL_S:.0f} ms)"),
    ]
    for label, value in rows:
        print(f"  {label:36s} {value}")
    print(f"goal: well under {GOAL_S:.0f} s for {args.witnesses} witnesses; CSV + measures "
          f"{1000 * cli_s:.1f} ms = {cli_s / GOAL_S:.3f} of the goal")
    print(f"(E' = {result.tredoux_e:.3f}, bootstrap CI {result.tredoux_e_ci_bootstrap[0]:.3f}–"
          f"{result.tredoux_e_ci_bootstrap[1]:.3f}; {result.verdict})")
    if args.json:
        args.json.write_text(json.dumps({
            "witnesses": args.witnesses, "size": args.size, "bootstrap": args.bootstrap,
            "repeats": args.repeats, "measures_s": full_s, "measures_no_bootstrap_s": no_boot_s,
            "read_csv_s": csv_s, "bincount_s": bincount_s, "measures_100_s": small_s,
            "goal_s": GOAL_S, "panel_s": panel_s, "panel_reference_s": panel_ref_s,
            "panel_goal_s": PANEL_GOAL_S}, indent=2) + "\n")
    say("done")
    return 0 if cli_s < GOAL_S and panel_s < PANEL_GOAL_S else 1


def panel_times(repeats: int) -> tuple[float, float]:
    """Seconds of the live panel's simulation of a 12-member lineup, and of the reference."""
    import numpy as np

    from models.fairness import analyse_choices
    from models.simulated_witnesses import SimMember, simulate

    rng = np.random.default_rng(1)

    def reading() -> dict:
        g = float(rng.uniform(0.6, 1.0))
        return {"gender": {"label": "female", "p": {"female": g, "male": 1 - g}},
                "age_group": {"label": "30-39", "p": 0.7}, "beard": {"label": False, "p": 0.1}}

    members = [SimMember(1, "suspect", 0.0, reading())] + [
        SimMember(i, "filler", float(rng.uniform(0.35, 0.9)), reading()) for i in range(2, 13)]
    description = {"gender": "female", "age_group": "30-39", "beard": False}
    choices = (rng.integers(0, 12, 200) + 1).tolist()
    return (median_time(lambda: simulate(members, description, n=200), repeats),
            median_time(lambda: analyse_choices(choices, 12, 1), repeats))


if __name__ == "__main__":
    sys.exit(main())
