"""Lineup fairness measures (models/fairness.py) against tables computed by hand, the CSV reader's
errors, and ``ligan lineup analyse`` through the real entry point.

Notation as in the module: k members, suspect at s, N mock witnesses, o_i choices of member i,
p_i = o_i / N, D = o_s. Every expected number is written out as arithmetic a reviewer can redo.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from models.fairness import (analyse_choices, analyse_counts, binomial_test, read_choices_csv,
                             tredoux_ci_bootstrap, wilson_interval)
from tests.conftest import REPO, ligan, run_bench

Z = 1.959963984540054  # the 97.5th percentile of the standard normal


def table(counts: list[int]) -> list[int]:
    """The choices of a table: position i repeated o_i times (shuffled order must not matter)."""
    choices = [pos for pos, o in enumerate(counts, start=1) for _ in range(o)]
    return list(np.random.default_rng(7).permutation(choices))


def exact_binomial_p(d: int, n: int, k: int) -> float:
    """Two-sided exact binomial p-value in rational arithmetic with math.comb: the sum of
    P(X = x) = C(n, x) (1/k)^x (1 − 1/k)^(n − x) over every x with P(X = x) ≤ P(X = d)."""
    p = Fraction(1, k)
    pmf = [comb(n, x) * p ** x * (1 - p) ** (n - x) for x in range(n + 1)]
    return float(sum(q for q in pmf if q <= pmf[d]))


def wilson_closed_form(d: int, n: int) -> tuple[float, float]:
    """(p̂ + z²/2n ± z √(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)."""
    ph = d / n
    centre = (ph + Z ** 2 / (2 * n)) / (1 + Z ** 2 / n)
    half = Z / (1 + Z ** 2 / n) * math.sqrt(ph * (1 - ph) / n + Z ** 2 / (4 * n ** 2))
    return centre - half, centre + half


# The worked table: k = 6, suspect at 3, counts 4, 2, 9, 5, 0, 10 → N = 30, D = 9.
WORKED = [4, 2, 9, 5, 0, 10]


def test_worked_table_every_measure_by_hand():
    r = analyse_choices(table(WORKED), 6, 3)
    assert r.n == 30 and r.counts == tuple(WORKED) and r.suspect_count == 9
    assert r.proportions == pytest.approx([4 / 30, 2 / 30, 9 / 30, 5 / 30, 0, 10 / 30])
    # Functional size N/D = 30/9 = 3.333…
    assert r.functional_size == pytest.approx(30 / 9) and r.functional_size_note is None
    # Malpass E: e = 30/6 = 5; Σ|o − e| = 1 + 3 + 4 + 0 + 5 + 5 = 18; 18/(2·5) = 1.8;
    # E = 6 − 1.8 = 4.2
    assert r.effective_size_malpass == pytest.approx(4.2)
    # Adjusted: foil 5 is null → k_a = 5, e_a = 30/5 = 6; over the other five:
    # |4−6| + |2−6| + |9−6| + |5−6| + |10−6| = 2 + 4 + 3 + 1 + 4 = 14; 14/12 = 7/6;
    # E_a = 5 − 7/6 = 23/6 = 3.8333…
    assert r.null_foils == (5,)
    assert r.effective_size_malpass_adjusted == pytest.approx(23 / 6)
    # Tredoux E′ = N²/Σo² = 900/(16 + 4 + 81 + 25 + 0 + 100) = 900/226 = 3.9823…
    assert r.tredoux_e == pytest.approx(900 / 226)
    # Normal theory: Σp² = 226/900, Σp³ = (64 + 8 + 729 + 125 + 0 + 1000)/27000 = 1926/27000;
    # Var(I) = (4/30)(1926/27000 − (226/900)²) = 0.0011035…; I = 1 − 226/900 = 674/900;
    # bounds 1/(1 − (I ∓ z·sd)) = 3.1624 and 5.3763
    sd = math.sqrt(4 / 30 * (1926 / 27000 - (226 / 900) ** 2))
    index = 674 / 900
    assert r.tredoux_e_ci == pytest.approx((1 / (1 - (index - Z * sd)),
                                            1 / (1 - (index + Z * sd))))
    assert r.tredoux_e_ci == pytest.approx((3.16235, 5.37629), abs=1e-4)
    # Proportion 9/30 = 0.3 against chance 1/6; ratio 0.3 / (1/6) = 1.8
    assert r.suspect_proportion == pytest.approx(0.3) and r.chance == pytest.approx(1 / 6)
    # Exact two-sided p: P(X = 9) under Binomial(30, 1/6) and every count no more likely
    # (x = 0, 1 and 9…30) sum to 0.080055
    assert r.binomial_p == pytest.approx(exact_binomial_p(9, 30, 6), rel=1e-9)
    assert r.binomial_p == pytest.approx(0.0800546, abs=1e-6)
    # Wilson: centre (0.3 + z²/60)/(1 + z²/30) = 0.32271, half-width 0.15606
    assert r.suspect_proportion_ci == pytest.approx(wilson_closed_form(9, 30), rel=1e-12)
    assert r.suspect_proportion_ci == pytest.approx((0.16665, 0.47876), abs=1e-5)
    # 1.8× chance but p = 0.08 > 0.05: not a significant bias
    assert r.bias == "none"
    assert r.verdict == ("the suspect was chosen by 9 of 30 mock witnesses, 1.8× chance (1/6): "
                         "not distinguishable from chance (p = 0.08)")


def test_uniform_table_has_every_size_equal_to_k():
    # k = 6, five choices each: N = 30, D = 5 at any position
    r = analyse_choices(table([5] * 6), 6, 4)
    assert r.functional_size == pytest.approx(6.0)  # 30/5
    assert r.effective_size_malpass == pytest.approx(6.0)  # Σ|5 − 5| = 0
    assert r.effective_size_malpass_adjusted == pytest.approx(6.0) and r.null_foils == ()
    assert r.tredoux_e == pytest.approx(6.0)  # 900 / (6·25)
    # Σp³ − (Σp²)² = 6/216 − (6/36)² = 1/36 − 1/36 = 0: the interval collapses to the point
    assert r.tredoux_e_ci == pytest.approx((6.0, 6.0))
    # E′ can never exceed k: every resample is ≤ 6, most below it
    low, high = r.tredoux_e_ci_bootstrap
    assert 1 <= low < high <= 6.0
    # D = 5 is the mode of Binomial(30, 1/6) (⌊31/6⌋ = 5): every count is no more likely, p = 1
    assert r.binomial_p == pytest.approx(1.0) and r.bias == "none"
    assert "not distinguishable from chance (p = 1)" in r.verdict


def test_nobody_chose_the_suspect():
    # k = 6, suspect at 2 with no choices, foil 4 with none either: counts 8, 0, 12, 0, 5, 5
    r = analyse_choices(table([8, 0, 12, 0, 5, 5]), 6, 2)
    assert r.suspect_count == 0 and r.functional_size is None
    assert "no mock witness chose the suspect" in r.functional_size_note
    assert r.to_dict()["functional_size"] is None
    # Malpass E: e = 5; Σ|o − e| = 3 + 5 + 7 + 5 + 0 + 0 = 20; E = 6 − 20/10 = 4
    assert r.effective_size_malpass == pytest.approx(4.0)
    # Only foil 4 is null (the suspect stays in): k_a = 5, e_a = 6;
    # |8−6| + |0−6| + |12−6| + |5−6| + |5−6| = 2 + 6 + 6 + 1 + 1 = 16; E_a = 5 − 16/12 = 11/3
    assert r.null_foils == (4,)
    assert r.effective_size_malpass_adjusted == pytest.approx(11 / 3)
    # P(X = 0) = (5/6)^30 = 0.0042; with the upper tail x ≥ 12, p = 0.006245 < 0.05
    assert r.binomial_p == pytest.approx(exact_binomial_p(0, 30, 6), rel=1e-9)
    assert r.binomial_p == pytest.approx(0.0062451, abs=1e-6)
    assert r.bias == "below chance"
    assert r.verdict.startswith("the suspect was chosen by 0 of 30 mock witnesses, 0× chance")
    assert "less often than chance" in r.verdict and "(p = 0.0062)" in r.verdict
    # Wilson at p̂ = 0: [0, z²/(n + z²)]
    assert r.suspect_proportion_ci == pytest.approx((0.0, Z ** 2 / (30 + Z ** 2)), abs=1e-12)


def test_everyone_chose_the_suspect():
    # k = 4, suspect at 2, all 10 choose 2: counts 0, 10, 0, 0
    r = analyse_choices([2] * 10, 4, 2)
    assert r.functional_size == pytest.approx(1.0)  # 10/10
    # e = 2.5; Σ|o − e| = 2.5 + 7.5 + 2.5 + 2.5 = 15; E = 4 − 15/5 = 1
    assert r.effective_size_malpass == pytest.approx(1.0)
    # foils 1, 3, 4 are null: k_a = 1, e_a = 10, E_a = 1 − 0 = 1
    assert r.null_foils == (1, 3, 4) and r.effective_size_malpass_adjusted == pytest.approx(1.0)
    assert r.tredoux_e == pytest.approx(1.0)  # 100/100
    assert r.tredoux_e_ci == pytest.approx((1.0, 1.0))  # Σp³ − (Σp²)² = 1 − 1 = 0
    assert r.tredoux_e_ci_bootstrap == pytest.approx((1.0, 1.0))  # every resample is 10, 0, 0, 0
    # only x = 10 is as unlikely as x = 10: p = (1/4)^10 = 9.54e-7
    assert r.binomial_p == pytest.approx(0.25 ** 10, rel=1e-9)
    assert r.bias == "against suspect"
    assert r.verdict == ("the suspect was chosen by 10 of 10 mock witnesses, 4× chance (1/4): "
                         "the lineup is biased against the suspect (p < 0.001)")


def test_everyone_chose_one_foil():
    # k = 4, suspect at 2, all 10 choose foil 1: counts 10, 0, 0, 0
    r = analyse_choices([1] * 10, 4, 2)
    assert r.tredoux_e == pytest.approx(1.0) and r.effective_size_malpass == pytest.approx(1.0)
    # foils 3 and 4 are null, the suspect stays: k_a = 2, e_a = 5; |10−5| + |0−5| = 10;
    # E_a = 2 − 10/10 = 1
    assert r.null_foils == (3, 4) and r.effective_size_malpass_adjusted == pytest.approx(1.0)
    assert r.functional_size is None
    # P(X = 0) = 0.75^10 = 0.0563; x ≥ 6 is no more likely (P(X = 5) = 0.0584 is): p = 0.0760
    assert r.binomial_p == pytest.approx(exact_binomial_p(0, 10, 4), rel=1e-9)
    assert r.binomial_p == pytest.approx(0.0760412, abs=1e-6)
    assert r.bias == "none"  # ten mock witnesses cannot show it


def test_two_member_lineup():
    # k = 2, suspect at 1, counts 8, 2
    r = analyse_choices(table([8, 2]), 2, 1)
    assert r.functional_size == pytest.approx(1.25)  # 10/8
    # e = 5; Σ|o − e| = 3 + 3 = 6; E = 2 − 6/10 = 1.4
    assert r.effective_size_malpass == pytest.approx(1.4)
    assert r.effective_size_malpass_adjusted == pytest.approx(1.4)  # no null foil
    assert r.tredoux_e == pytest.approx(100 / 68)  # 10²/(64 + 4)
    # Binomial(10, 1/2) is symmetric: p = 2·P(X ≥ 8) = 2·(45 + 10 + 1)/1024 = 112/1024
    assert r.binomial_p == pytest.approx(112 / 1024, rel=1e-9)
    assert r.bias == "none"
    # counts 9, 1: p = 2·(10 + 1)/1024 = 22/1024 = 0.0215 < 0.05
    r = analyse_choices(table([9, 1]), 2, 1)
    assert r.binomial_p == pytest.approx(22 / 1024, rel=1e-9)
    assert r.bias == "against suspect" and "1.8× chance (1/2)" in r.verdict
    # and the same table with the suspect at 2: below chance
    r = analyse_choices(table([9, 1]), 2, 2)
    assert r.binomial_p == pytest.approx(22 / 1024, rel=1e-9) and r.bias == "below chance"


@pytest.mark.parametrize("d,n,k", [(0, 1, 2), (1, 1, 6), (3, 17, 5), (12, 40, 6), (7, 100, 8),
                                   (50, 100, 2), (0, 200, 3), (150, 1000, 6)])
def test_binomial_test_matches_math_comb_and_scipy(d, n, k):
    from scipy.stats import binomtest

    expected = exact_binomial_p(d, n, k)
    assert binomial_test(d, n, 1 / k) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert binomial_test(d, n, 1 / k) == pytest.approx(binomtest(d, n, 1 / k).pvalue, rel=1e-9)


@pytest.mark.parametrize("d,n", [(0, 1), (1, 1), (3, 7), (9, 30), (50, 100), (10000, 10000)])
def test_wilson_interval_closed_form(d, n):
    low, high = wilson_interval(d, n)
    exp_low, exp_high = wilson_closed_form(d, n)
    assert (low, high) == pytest.approx((max(0.0, exp_low), min(1.0, exp_high)), abs=1e-12)
    assert 0 <= low <= d / n <= high <= 1


def test_bootstrap_interval_is_reproducible_and_contains_the_estimate():
    counts = [6, 4, 9, 5, 3, 3]  # N = 30, E′ = 900/176 = 5.11
    r = analyse_counts(counts, 3, bootstrap=2000, seed=11)
    low, high = r.tredoux_e_ci_bootstrap
    assert low < r.tredoux_e < high and 1 <= low and high <= 6
    assert analyse_counts(counts, 3, bootstrap=2000, seed=11).tredoux_e_ci_bootstrap == (low, high)
    assert tredoux_ci_bootstrap(counts, 2000, 12) != (low, high)
    # The percentile interval: E′ of each seeded multinomial resample, 2.5th/97.5th percentiles
    tables = np.random.default_rng(11).multinomial(30, np.array(counts) / 30, size=2000)
    values = 900 / (tables ** 2).sum(axis=1)
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    off = analyse_counts(counts, 3, bootstrap=0)
    assert off.tredoux_e_ci_bootstrap is None and off.to_dict()["tredoux_e_ci_bootstrap"] is None


def test_to_dict_is_json_with_the_documented_keys():
    d = json.loads(json.dumps(analyse_choices(table(WORKED), 6, 3).to_dict()))
    for key in ("n", "counts", "functional_size", "effective_size_malpass",
                "effective_size_malpass_adjusted", "tredoux_e", "tredoux_e_ci",
                "tredoux_e_ci_bootstrap", "suspect_proportion", "suspect_proportion_ci",
                "binomial_p", "verdict"):
        assert key in d, key
    assert d["counts"] == WORKED and len(d["tredoux_e_ci"]) == 2


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="no mock-witness choices"):
        analyse_choices([], 6, 1)
    with pytest.raises(ValueError, match="no mock-witness choices"):
        analyse_counts([0, 0, 0], 1)
    with pytest.raises(ValueError, match=r"choice number 3 is 7, not a position of the lineup "
                                         r"\(1 to 6\)"):
        analyse_choices([1, 2, 7, 0], 6, 1)
    with pytest.raises(ValueError, match="choice number 2 is 0"):
        analyse_choices([1, 0], 6, 1)
    with pytest.raises(ValueError, match="choice number 2 is 2.5, not a whole number"):
        analyse_choices([1, 2.5], 6, 1)
    with pytest.raises(ValueError, match="at least 2 members"):
        analyse_choices([1], 1, 1)
    with pytest.raises(ValueError, match="suspect position must be from 1 to 6"):
        analyse_choices([1], 6, 7)
    with pytest.raises(ValueError, match="bootstrap"):
        analyse_choices([1], 6, 1, bootstrap=-1)
    assert analyse_choices(np.array([1.0, 2.0]), 2, 1).counts == (1, 1)


# ---- the CSV reader -----------------------------------------------------------------------

def write(tmp_path, text: str, name: str = "choices.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_keeps_other_columns_skips_blank_lines_and_reads_a_bom(tmp_path):
    path = write(tmp_path, "\ufeffwitness, Choice ,note\nw1,3,\"sure, very\"\n\nw2, 1 ,\n")
    choices, rows = read_choices_csv(path, size=6)
    assert choices == [3, 1]
    assert rows == [{"witness": "w1", "Choice": "3", "note": "sure, very"},
                    {"witness": "w2", "Choice": " 1 ", "note": ""}]


@pytest.mark.parametrize("text,message", [
    ("witness,pick\nw1,3\n", "no 'choice' column in the header row (its columns: 'witness', "
                             "'pick')"),
    ("witness;choice\nw1;3\n", "separated by semicolons or tabs"),
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
    ("choice\n", "no choices below the header row"),
    ("witness,choice\nw1,3\nw2,2\nw3,7\n", "choices.csv, row 4: choice 7 is not a position of the "
                                           "lineup (1 to 6)"),
    ("witness,choice\nw1,3\nw2,0\n", "row 3: choice 0 is not a position"),
    # the blank line 3 counts: w2 is on row 4
    ("witness,choice\nw1,3\n\nw2,2.5\n", "row 4: choice '2.5' is not a whole number"),
    ("witness,choice\nw1,three\n", "row 2: choice 'three' is not a whole number"),
    ("witness,choice\nw1,3\nw2\n", "row 3: no choice"),
    ("choice,choice\n1,2\n", "2 'choice' columns"),
])
def test_csv_errors_are_one_line_and_name_the_row(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        read_choices_csv(path, size=6)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_csv_without_size_rejects_only_positions_below_one(tmp_path):
    assert read_choices_csv(write(tmp_path, "choice\n9\n"))[0] == [9]
    with pytest.raises(ValueError, match="row 2: choice -1 is not a position of the lineup "
                                         r"\(1 or more\)"):
        read_choices_csv(write(tmp_path, "choice\n-1\n"))


def test_csv_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read it"):
        read_choices_csv(tmp_path / "absent.csv")


# ---- ligan lineup analyse ------------------------------------------------------------------

def worked_csv(tmp_path):
    lines = ["witness,choice"] + [f"w{i},{c}" for i, c in enumerate(table(WORKED), start=1)]
    return write(tmp_path, "\n".join(lines) + "\n")


def test_cli_json(tmp_path):
    r = ligan("lineup", "analyse", "--choices", str(worked_csv(tmp_path)), "--size", "6",
              "--suspect-position", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 30 and out["counts"] == WORKED
    assert out["functional_size"] == pytest.approx(30 / 9)
    assert out["effective_size_malpass"] == pytest.approx(4.2)
    assert out["effective_size_malpass_adjusted"] == pytest.approx(23 / 6)
    assert out["tredoux_e"] == pytest.approx(900 / 226)
    assert out["tredoux_e_ci"] == pytest.approx([3.16235, 5.37629], abs=1e-4)
    assert out["suspect_proportion"] == pytest.approx(0.3)
    assert out["suspect_proportion_ci"] == pytest.approx([0.16665, 0.47876], abs=1e-5)
    assert out["binomial_p"] == pytest.approx(0.0800546, abs=1e-6)
    assert "not distinguishable from chance" in out["verdict"]


def test_cli_table(tmp_path):
    r = ligan("lineup", "analyse", "--choices", str(worked_csv(tmp_path)), "--size", "6",
              "--suspect-position", "3")
    assert r.returncode == 0, r.stderr
    assert "       3       9   30.0 %  <- suspect" in r.stdout
    assert "effective size E (Malpass 1981)" in r.stdout and "4.20 of 6" in r.stdout
    assert "verdict: the suspect was chosen by 9 of 30 mock witnesses" in r.stdout
    assert "lineup of 6 (target-present), suspect at position 3" in r.stdout


def test_a_target_absent_lineup_names_its_designated_innocent_suspect(tmp_path):
    from models.fairness import analyse_counts

    present = analyse_counts(WORKED, 3, bootstrap=0)
    absent = analyse_counts(WORKED, 3, bootstrap=0, design="target-absent")
    same = {k: v for k, v in present.to_dict().items() if k not in ("verdict", "design")}
    assert same == {k: v for k, v in absent.to_dict().items() if k not in ("verdict", "design")}
    assert absent.design == "target-absent" and present.design == "target-present"
    assert absent.verdict.startswith("the designated innocent suspect was chosen by 9 of 30")
    with pytest.raises(ValueError, match="design must be one of target-present, target-absent"):
        analyse_counts(WORKED, 3, design="culprit-free")
    r = ligan("lineup", "analyse", "--choices", str(worked_csv(tmp_path)), "--size", "6",
              "--suspect-position", "3", "--design", "target-absent")
    assert r.returncode == 0, r.stderr
    assert "       3       9   30.0 %  <- designated innocent suspect" in r.stdout
    r = ligan("lineup", "analyse", "--choices", str(worked_csv(tmp_path)), "--size", "6",
              "--suspect-position", "3", "--design", "target-absent", "--json")
    assert json.loads(r.stdout)["design"] == "target-absent"


@pytest.mark.parametrize("args,message", [
    (["--size", "6", "--suspect-position", "3"], "row 3: choice 7 is not a position of the "
                                                  "lineup (1 to 6)"),
    (["--size", "1", "--suspect-position", "1"], "--size must be at least 2, got 1"),
    (["--size", "6", "--suspect-position", "7"], "--suspect-position must be from 1 to 6, got 7"),
    (["--size", "6", "--suspect-position", "0"], "--suspect-position must be from 1 to 6, got 0"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    path = write(tmp_path, "witness,choice\nw1,3\nw2,7\n")
    r = ligan("lineup", "analyse", "--choices", str(path), *args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("ligan: error: ")
    assert message in r.stderr


def test_cli_does_not_load_tensorflow(tmp_path):
    code = ("import sys; from setup.cli import main; "
            f"rc = main(['lineup', 'analyse', '--choices', {str(worked_csv(tmp_path))!r}, "
            "'--size', '6', '--suspect-position', '3', '--json']); "
            "print('TF' if 'tensorflow' in sys.modules else 'no TF', rc, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.stderr.strip().endswith("no TF 0"), r.stderr


def test_benchmark_runs_and_meets_its_goal(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_bench("fairness.py", "--repeats", "3", "--json", str(out), timeout=120)
    numbers = json.loads(out.read_text())
    assert numbers["witnesses"] == 10_000 and numbers["bootstrap"] == 2000
    assert 0 < numbers["measures_s"] < numbers["goal_s"]
    assert 0 < numbers["panel_s"] < numbers["panel_goal_s"] and numbers["panel_reference_s"] > 0
    assert "live panel: simulated witnesses" in proc.stdout
    assert "goal: well under 1 s for 10000 witnesses" in proc.stdout
