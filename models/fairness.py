"""Lineup fairness from mock-witness choices: how many members are plausible, and whether the
suspect stands out.

In a mock-witness test, people who never saw the culprit read the witness's description and
pick the lineup member who fits it best. In a fair lineup every member is picked about equally
often; a lineup biased against the suspect draws the mock witnesses to the suspect. This module
computes the published measures from the table of those choices — pure NumPy and the standard
library (no TensorFlow, no servers), so the command line and any server can call it cheaply.

Notation: ``k`` members (nominal size), the suspect at position ``s`` (1-based), ``N`` mock
witnesses, ``o_i`` the number who chose member ``i``, ``p_i = o_i / N``, ``D = o_s``.

Design: in a *target-present* lineup (the default) ``s`` is the suspect; in a *target-absent*
lineup built for a study, ``s`` is the *designated innocent suspect* (the member who stands in
for an innocent suspect). The measures are the same; the verdict names the member accordingly.

* **Functional size** ``N / D`` (Wells, Leippe & Ostrom, 1979; r4lineups ``func_size``);
  undefined when nobody chose the suspect (r4lineups returns ``Inf``; here ``None`` and a
  reason).
* **Malpass's effective size** ``E = k − Σ_i |o_i − e| / (2e)``, ``e = N / k``, over all ``k``
  members (Malpass, 1981, with the nominal size kept as Tredoux, 1998, recommends; this is what
  r4lineups ``esize_m`` returns).
* **Malpass's adjusted effective size** ``E_a = k_a − Σ_{i non-null} |o_i − e_a| / (2 e_a)``,
  ``e_a = N / k_a``, ``k_a = k −`` the number of null foils (Malpass's 1981 original: foils that
  nobody chose are not plausible alternatives and leave the nominal size; r4lineups prints it as
  "Effective size (Malpass, 1981)" with ``both = TRUE``). A null foil is a *foil* with no
  choices; the suspect is never removed, even when nobody chose them.
* **Tredoux's E′** ``= 1 / Σ_i p_i²`` (Tredoux, 1998, after Agresti & Agresti's, 1978, index of
  diversity ``I = 1 − Σ p_i²``, ``E′ = 1 / (1 − I)``; r4lineups ``esize_T``), with two 95 %
  intervals:

  - *normal theory* (Tredoux, 1998; r4lineups ``esize_T_ci_n``): the delta-method variance
    ``Var(I) ≈ (4 / N) (Σ p_i³ − (Σ p_i²)²)``, the interval ``I ± z·√Var(I)``, mapped to E′ by
    ``1 / (1 − I)``. Here ``I`` is clipped to its possible range ``[0, 1 − 1/k]`` first, so the
    bounds stay within ``[1, k]`` (r4lineups does not clip). The variance is 0 for a uniform
    table and for a table with one chosen member, so there the interval collapses to the point:
    read the bootstrap interval.
  - *bootstrap*: ``B`` multinomial resamples of ``N`` choices with the observed ``p_i`` (a
    seeded generator: the same seed gives the same interval), the 2.5th and 97.5th percentiles
    of their E′ (percentile interval). E′ can never exceed ``k``, so near a uniform table the
    resamples fall below the estimate and the interval can lie entirely below it.

* **Proportion choosing the suspect** ``D / N`` against chance ``1 / k``: the exact two-sided
  binomial test (the p-value sums the probabilities of every count no more likely than ``D``
  under ``Binomial(N, 1/k)``, as R's ``binom.test`` and SciPy's ``binomtest`` do) and the Wilson
  score 95 % interval (Wilson, 1927).

References: Wells, G. L., Leippe, M. R., & Ostrom, T. M. (1979). Guidelines for empirically
assessing the fairness of a lineup. Law and Human Behavior, 3(4), 285–293. Malpass, R. S.
(1981). Effective size and defendant bias in eyewitness identification lineups. Law and Human
Behavior, 5(4), 299–309. Tredoux, C. G. (1998). Statistical inference on measures of lineup
fairness. Law and Human Behavior, 22(2), 217–237. Agresti, A., & Agresti, B. F. (1978).
Statistical analysis of qualitative variation. Sociological Methodology, 9, 204–237. Wilson,
E. B. (1927). Probable inference, the law of succession, and statistical inference. JASA, 22,
209–212. Tredoux, C. G., & Naylor, T. M., r4lineups (R package).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Sequence

import numpy as np

ALPHA = 0.05  # the level of the binomial test and of every interval (95 %)
#: Members of a lineup unless the administrator chooses otherwise: the suspect and five
#: fillers, the common size of photo lineups.
DEFAULT_LINEUP_SIZE = 6
DESIGNS = ("target-present", "target-absent")
Z = NormalDist().inv_cdf(1 - ALPHA / 2)  # 1.959963984540054
CHOICE_COLUMN = "choice"
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class LineupFairness:
    """Every measure of one lineup's mock-witness test (see the module docstring for formulas)."""

    size: int  # k, the nominal size
    suspect_position: int  # s, 1-based
    n: int  # N mock witnesses
    counts: tuple[int, ...]  # o_1 … o_k
    proportions: tuple[float, ...]  # p_1 … p_k
    functional_size: float | None  # N / D; None when D = 0
    functional_size_note: str | None  # why it is undefined, when it is
    effective_size_malpass: float  # E over all k members
    effective_size_malpass_adjusted: float  # E_a, null foils removed
    null_foils: tuple[int, ...]  # positions of the foils nobody chose
    tredoux_e: float  # E′ = 1 / Σ p_i²
    tredoux_e_ci: tuple[float, float]  # normal theory (delta method), Tredoux 1998
    tredoux_e_ci_bootstrap: tuple[float, float] | None  # percentile; None without resamples
    bootstrap_resamples: int
    seed: int
    suspect_count: int  # D
    suspect_proportion: float  # D / N
    chance: float  # 1 / k
    suspect_proportion_ci: tuple[float, float]  # Wilson score interval
    binomial_p: float  # exact two-sided test of D / N = 1 / k
    bias: str  # "against suspect", "below chance" or "none" (the test at ALPHA)
    verdict: str
    design: str = "target-present"  # or "target-absent": s is the designated innocent suspect

    def to_dict(self) -> dict:
        """A JSON-ready dict (lists for tuples; ``None`` for what is undefined)."""
        return {
            "size": self.size,
            "suspect_position": self.suspect_position,
            "n": self.n,
            "counts": list(self.counts),
            "proportions": list(self.proportions),
            "functional_size": self.functional_size,
            "functional_size_note": self.functional_size_note,
            "effective_size_malpass": self.effective_size_malpass,
            "effective_size_malpass_adjusted": self.effective_size_malpass_adjusted,
            "null_foils": list(self.null_foils),
            "tredoux_e": self.tredoux_e,
            "tredoux_e_ci": list(self.tredoux_e_ci),
            "tredoux_e_ci_method": "normal theory (delta method), Tredoux 1998",
            "tredoux_e_ci_bootstrap": (None if self.tredoux_e_ci_bootstrap is None
                                       else list(self.tredoux_e_ci_bootstrap)),
            "bootstrap_resamples": self.bootstrap_resamples,
            "seed": self.seed,
            "suspect_count": self.suspect_count,
            "suspect_proportion": self.suspect_proportion,
            "chance": self.chance,
            "suspect_proportion_ci": list(self.suspect_proportion_ci),
            "binomial_p": self.binomial_p,
            "bias": self.bias,
            "verdict": self.verdict,
            "design": self.design,
        }


def analyse_choices(choices: Sequence[int], size: int, suspect_position: int, *,
                    bootstrap: int = 2000, seed: int = 0,
                    design: str = "target-present") -> LineupFairness:
    """All fairness measures of a lineup of ``size`` members with the suspect (the designated
    innocent suspect when ``design`` is "target-absent") at ``suspect_position`` (1-based),
    from each mock witness's chosen position (1-based).

    Raises ValueError for a size below 2, a suspect position outside the lineup, no choices, or
    a choice that is not a position of the lineup (naming the first such choice).
    """
    k, s = _check_lineup(size, suspect_position)
    return analyse_counts(count_choices(choices, k), s, bootstrap=bootstrap, seed=seed,
                          design=design)


def count_choices(choices: Sequence[int], size: int) -> np.ndarray:
    """The number of mock witnesses who chose each position 1…``size`` (validated: every
    choice a whole number from 1 to ``size``; the first bad one is named)."""
    values = np.asarray(choices)
    if values.ndim != 1:
        raise ValueError(f"choices must be a flat sequence of positions, got shape {values.shape}")
    if values.size == 0:
        raise ValueError("no mock-witness choices: need at least one")
    if values.dtype.kind not in "iu":
        as_list = values.tolist()
        for i, v in enumerate(as_list):
            whole = (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                     or isinstance(v, float) and v.is_integer())
            if not whole:
                raise ValueError(f"choice number {i + 1} is {v!r}, not a whole number")
        values = np.asarray(as_list, dtype=np.int64)
    outside = np.flatnonzero((values < 1) | (values > size))
    if outside.size:
        i = int(outside[0])
        raise ValueError(f"choice number {i + 1} is {int(values[i])}, not a position of the "
                         f"lineup (1 to {size})")
    return np.bincount(values.astype(np.intp), minlength=size + 1)[1:]


def analyse_counts(counts: Sequence[int], suspect_position: int, *, bootstrap: int = 2000,
                   seed: int = 0, design: str = "target-present") -> LineupFairness:
    """All fairness measures from the table of counts per member (position 1 first)."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")
    o = np.asarray(counts, dtype=np.int64)
    k, s = _check_lineup(len(o), suspect_position)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) \
            or bootstrap < 0:
        raise ValueError(f"bootstrap must be a whole number of resamples ≥ 0, got {bootstrap!r}")
    bootstrap = int(bootstrap)
    if (o < 0).any():
        raise ValueError("counts cannot be negative")
    n = int(o.sum())
    if n == 0:
        raise ValueError("no mock-witness choices: need at least one")
    d = int(o[s - 1])
    p = o / n

    if d:
        functional, note = n / d, None
    else:
        functional = None
        note = "undefined: no mock witness chose the suspect (N/D with D = 0)"

    e = n / k
    malpass = float(k - np.abs(o - e).sum() / (2 * e))
    foil = np.arange(1, k + 1) != s
    null = foil & (o == 0)
    kept = o[~null]
    k_a = len(kept)
    e_a = n / k_a
    malpass_adj = float(k_a - np.abs(kept - e_a).sum() / (2 * e_a))

    tredoux = tredoux_e(o)
    ci = tredoux_ci_normal(o)
    boot = tredoux_ci_bootstrap(o, bootstrap, seed) if bootstrap else None

    chance = 1 / k
    pval = binomial_test(d, n, chance)
    bias = "none" if pval >= ALPHA else ("against suspect" if d / n > chance else "below chance")
    return LineupFairness(
        size=k, suspect_position=s, n=n, counts=tuple(int(c) for c in o),
        proportions=tuple(float(x) for x in p), functional_size=functional,
        functional_size_note=note, effective_size_malpass=malpass,
        effective_size_malpass_adjusted=malpass_adj,
        null_foils=tuple(int(i) + 1 for i in np.flatnonzero(null)), tredoux_e=tredoux,
        tredoux_e_ci=ci, tredoux_e_ci_bootstrap=boot, bootstrap_resamples=int(bootstrap),
        seed=seed, suspect_count=d, suspect_proportion=d / n, chance=chance,
        suspect_proportion_ci=wilson_interval(d, n), binomial_p=pval, bias=bias,
        verdict=_verdict(d, n, k, pval, bias, design), design=design)


def tredoux_e(counts: Sequence[int]) -> float:
    """Tredoux's (1998) effective size E′ = 1 / Σ p_i² = N² / Σ o_i²."""
    o = np.asarray(counts, dtype=np.float64)
    return float(o.sum() ** 2 / np.square(o).sum())


def tredoux_ci_normal(counts: Sequence[int], alpha: float = ALPHA) -> tuple[float, float]:
    """Tredoux's (1998) normal-theory interval of E′: ``I ± z √((4/N)(Σp³ − (Σp²)²))`` on the
    diversity index ``I = 1 − Σp²``, clipped to ``[0, 1 − 1/k]`` and mapped by ``1/(1 − I)``."""
    o = np.asarray(counts, dtype=np.float64)
    n, k = o.sum(), len(o)
    p = o / n
    sum2, sum3 = float(np.square(p).sum()), float((p ** 3).sum())
    sd = math.sqrt(max(0.0, 4 / n * (sum3 - sum2 ** 2)))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    index = 1 - sum2
    low, high = (min(max(i, 0.0), 1 - 1 / k) for i in (index - z * sd, index + z * sd))
    return 1 / (1 - low), 1 / (1 - high)


def tredoux_ci_bootstrap(counts: Sequence[int], resamples: int = 2000, seed: int = 0,
                         alpha: float = ALPHA) -> tuple[float, float]:
    """Percentile bootstrap interval of E′: ``resamples`` multinomial tables of N choices drawn
    with the observed proportions by ``numpy.random.default_rng(seed)``."""
    o = np.asarray(counts, dtype=np.int64)
    n = int(o.sum())
    tables = np.random.default_rng(seed).multinomial(n, o / n, size=resamples)
    values = n * n / np.square(tables.astype(np.float64)).sum(axis=1)
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def binomial_test(successes: int, trials: int, p: float) -> float:
    """Exact two-sided binomial p-value: the total probability under ``Binomial(trials, p)`` of
    every count no more likely than ``successes`` (with SciPy's relative tolerance of 1e-7 for
    ties), capped at 1."""
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"need 0 ≤ successes ≤ trials and trials ≥ 1, got {successes}, {trials}")
    x = np.arange(trials + 1)
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, trials + 1)))))
    log_pmf = (log_fact[trials] - log_fact - log_fact[::-1]
               + x * math.log(p) + (trials - x) * math.log1p(-p))
    pmf = np.exp(log_pmf)
    observed = pmf[successes]
    return float(min(1.0, pmf[pmf <= observed * (1 + 1e-7)].sum()))


def wilson_interval(successes: int, trials: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of a proportion: ``(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) /
    (1 + z²/n)``."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    n, phat = trials, successes / trials
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def format_p(p: float) -> str:
    """A p-value as people quote it: two significant digits, or ``< 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _verdict(d: int, n: int, k: int, pval: float, bias: str,
             design: str = "target-present") -> str:
    ratio = d * k / n
    who = "the designated innocent suspect" if design == "target-absent" else "the suspect"
    head = f"{who} was chosen by {d} of {n} mock witnesses, {ratio:.2g}× chance (1/{k})"
    if bias == "against suspect":
        return f"{head}: the lineup is biased against {who} ({format_p(pval)})"
    if bias == "below chance":
        return (f"{head}: less often than chance, so the lineup is not biased against "
                f"{who} ({format_p(pval)})")
    return f"{head}: not distinguishable from chance ({format_p(pval)})"


def _check_lineup(size: int, suspect_position: int) -> tuple[int, int]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"a lineup needs at least 2 members, got size {size!r}")
    if isinstance(suspect_position, bool) or not isinstance(suspect_position, (int, np.integer)) \
            or not 1 <= suspect_position <= size:
        raise ValueError(f"the suspect position must be from 1 to {size}, got "
                         f"{suspect_position!r}")
    return int(size), int(suspect_position)


def read_choices_csv(path: str | Path, size: int | None = None
                     ) -> tuple[list[int], list[dict[str, str]]]:
    """The choices of a CSV file with a header row holding a ``choice`` column (the chosen
    position, 1-based; other columns are kept) → (choices, rows as dicts of every column).

    Rows are numbered as a spreadsheet numbers them (the header is row 1); blank lines are
    skipped. With ``size``, a choice above it is rejected too. Every error is a one-line
    ValueError naming the file and, for a bad choice, its row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file (save it as CSV UTF-8)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
    if header is None:
        raise ValueError(f"{path}: the file is empty (it needs a header row with a "
                         f"'{CHOICE_COLUMN}' column and one row per mock witness)")
    names = [cell.strip() for cell in header]
    wanted = [i for i, name in enumerate(names) if name.lower() == CHOICE_COLUMN]
    if not wanted:
        hint = (" (is it separated by semicolons or tabs? use commas)"
                if len(names) == 1 and re.search(r"[;\t]", names[0]) else "")
        shown = ", ".join(repr(n) for n in names)
        raise ValueError(f"{path}: no '{CHOICE_COLUMN}' column in the header row (its columns: "
                         f"{shown}){hint}")
    if len(wanted) > 1:
        raise ValueError(f"{path}: the header row has {len(wanted)} '{CHOICE_COLUMN}' columns")
    col = wanted[0]
    choices: list[int] = []
    rows: list[dict[str, str]] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        row = reader.line_num
        value = cells[col].strip() if col < len(cells) else ""
        if not value:
            raise ValueError(f"{path}, row {row}: no choice")
        if not _INTEGER.fullmatch(value):
            raise ValueError(f"{path}, row {row}: choice {value!r} is not a whole number")
        choice = int(value)
        if choice < 1 or (size is not None and choice > size):
            span = f"1 to {size}" if size is not None else "1 or more"
            raise ValueError(f"{path}, row {row}: choice {choice} is not a position of the "
                             f"lineup ({span})")
        choices.append(choice)
        rows.append({name: (cells[i] if i < len(cells) else "") for i, name in enumerate(names)})
    if not choices:
        raise ValueError(f"{path}: no choices below the header row")
    return choices, rows


def format_table(result: LineupFairness) -> str:
    """A short readable report: the counts per member, then each measure and the verdict."""
    r = result
    who = "designated innocent suspect" if r.design == "target-absent" else "suspect"
    lines = [f"lineup of {r.size} ({r.design}), {who} at position {r.suspect_position}, "
             f"{r.n} mock witnesses", "", "position  chosen  share"]
    for i, (count, share) in enumerate(zip(r.counts, r.proportions), start=1):
        mark = f"  <- {who}" if i == r.suspect_position else ""
        lines.append(f"{i:>8}  {count:>6}  {100 * share:5.1f} %{mark}")
    lo, hi = r.tredoux_e_ci
    plo, phi = r.suspect_proportion_ci
    rows = [
        ("functional size N/D (Wells et al. 1979)",
         f"{r.functional_size:.2f}" if r.functional_size is not None
         else r.functional_size_note),
        ("effective size E (Malpass 1981)", f"{r.effective_size_malpass:.2f} of {r.size}"),
        ("  adjusted for null foils (Malpass 1981)",
         f"{r.effective_size_malpass_adjusted:.2f} (null foils: "
         f"{', '.join(str(i) for i in r.null_foils) or 'none'})"),
        ("effective size E' (Tredoux 1998)", f"{r.tredoux_e:.2f}"),
        ("  95 % CI, normal theory (Tredoux 1998)", f"{lo:.2f} to {hi:.2f}"),
    ]
    if r.tredoux_e_ci_bootstrap is not None:
        blo, bhi = r.tredoux_e_ci_bootstrap
        rows.append((f"  95 % CI, bootstrap ({r.bootstrap_resamples} resamples)",
                     f"{blo:.2f} to {bhi:.2f}"))
    rows += [
        ("suspect chosen", f"{r.suspect_count} of {r.n} = {100 * r.suspect_proportion:.1f} % "
                           f"(chance {100 * r.chance:.1f} %)"),
        ("  95 % CI (Wilson)", f"{100 * plo:.1f} % to {100 * phi:.1f} %"),
        (f"  exact binomial test against 1/{r.size}", f"{format_p(r.binomial_p)}, two-sided"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines += ["", *(f"{label.ljust(width)}{value}" for label, value in rows), "",
              f"verdict: {r.verdict}"]
    return "\n".join(lines)
