"""Claims checked in code: a conclusion the prose draws, tested against the seed spread right
after the result it comes from (every chapter).

A comparison over seeds gives two sets of scores, ``a`` and ``b`` (one per seed, paired by seed
when both sides used the same seeds). The *effect* is ``mean(a) - mean(b)``; the *spread* is the
standard deviation of the paired differences (or, unpaired, ``sqrt(sd_a^2 + sd_b^2)``). A
difference is *clear* only when ``|effect|`` exceeds ``margin`` times the spread (and, with a
single seed, never: one seed has no spread). So the verdict is one of

* ``"a > b"``: clearly higher;
* ``"a < b"``: clearly lower;
* ``"no clear difference"``: within the spread.

:func:`check` states a claim, prints a one-line verdict and raises :class:`ClaimFailed` if the
data do not support it, so a notebook executed with other settings stops at the sentence that
no longer holds instead of printing it. A notebook's full run (``FULL = True``) is the
exception: its parameters cell calls ``stop_on_failure(not FULL)``, so the bigger run prints
every verdict and goes on to the end, and its prose names the claims that differ there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tlutils import checks

__all__ = ["EXPECTATIONS", "ClaimFailed", "Verdict", "check", "compare", "per_seed",
           "report_only", "stop_on_failure", "verify"]

#: What a claim may expect: ``a`` clearly higher, clearly lower, or no clear difference.
EXPECTATIONS = ("a > b", "a < b", "no clear difference")


#: Whether :func:`check` and :func:`verify` raise on a claim that does not hold (see
#: :func:`stop_on_failure`).
_STOP = True


class ClaimFailed(AssertionError):
    """Raised by :func:`check` when a claim does not hold for the data it is checked on
    (section 5.8, and every chapter's claim cells)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing ``a`` with ``b`` (chapter 04, "Evaluation", and every
    chapter's claim cells): the effect, the spread, how many seeds, and the verdict."""

    effect: float
    spread: float
    n: int
    paired: bool
    verdict: str

    def line(self, claim: str, holds: bool) -> str:
        """One line for the notebook: the claim, the numbers, and whether it holds."""
        kind = "paired sd" if self.paired else "pooled sd"
        return (f"{'HOLDS' if holds else 'FAILS'}: {claim}  [effect {self.effect:+.3f}, "
                f"{kind} {self.spread:.3f}, {self.n} seeds -> {self.verdict}]")


def _scores(name: str, values: object) -> np.ndarray:
    if isinstance(values, (int, float, np.integer, np.floating)):
        values = [values]
    out = np.asarray(checks.sequence(name, values), dtype=np.float64)
    checks.finite_array(name, out)
    return out


def compare(a: Sequence[float] | float, b: Sequence[float] | float = 0.0, *,
            paired: bool | None = None, margin: float = 1.0) -> Verdict:
    """Compare scores ``a`` with ``b`` over seeds (chapter 04, "Evaluation").

    ``b`` may be a single number (a fixed baseline such as chance). ``paired`` (default: when
    both have the same length > 1) uses the spread of the per-seed differences. The difference
    is clear when ``|effect| > margin * spread`` and there are at least two seeds.
    """
    xa, xb = _scores("a", a), _scores("b", b)
    margin = checks.number("margin", margin, low=0.0)
    if paired is None:
        paired = len(xa) == len(xb) and len(xa) > 1
    if paired and len(xa) != len(xb):
        raise ValueError(f"paired scores need equal lengths, got {len(xa)} and {len(xb)}")
    effect = float(xa.mean() - xb.mean())
    if paired:
        diffs = xa - xb
        spread = float(diffs.std(ddof=1)) if len(diffs) > 1 else math.inf
        n = len(diffs)
    else:
        sd_a = float(xa.std(ddof=1)) if len(xa) > 1 else 0.0
        sd_b = float(xb.std(ddof=1)) if len(xb) > 1 else 0.0
        spread = math.hypot(sd_a, sd_b) if max(len(xa), len(xb)) > 1 else math.inf
        n = max(len(xa), len(xb))
    clear = n > 1 and abs(effect) > margin * spread
    verdict = ("a > b" if effect > 0 else "a < b") if clear else "no clear difference"
    return Verdict(effect=effect, spread=spread, n=n, paired=bool(paired), verdict=verdict)


def check(claim: str, a: Sequence[float] | float, b: Sequence[float] | float = 0.0, *,
          expect: str = "a > b", paired: bool | None = None, margin: float = 1.0,
          quiet: bool = False) -> Verdict:
    """State ``claim`` about scores ``a`` and ``b`` and check it (every chapter's claim cells).

    ``expect`` is one of :data:`EXPECTATIONS`. Prints a one-line verdict (unless ``quiet``) and
    raises :class:`ClaimFailed` if :func:`compare` does not give the expected verdict. E.g.
    ``claims.check("fine-tuning beats scratch at 10 labels/class", ft, scratch)``.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"claim must be a non-empty sentence, got {claim!r}")
    checks.one_of("expect", expect, EXPECTATIONS)
    verdict = compare(a, b, paired=paired, margin=margin)
    holds = verdict.verdict == expect
    if not quiet:
        print(verdict.line(claim, holds))
    if not holds and not report_only():
        raise ClaimFailed(verdict.line(claim, holds))
    return verdict


def verify(claim: str, holds: bool, *, evidence: str = "") -> bool:
    """State a claim about a *deterministic* result (no seeds, hence no spread: an exact
    identity, a full-batch run, a bit-for-bit check) and check it (chapters 03-04).

    Prints ``HOLDS: <claim>  [<evidence> -> exact]`` (or ``FAILS``) like :func:`check`, so
    ``benchmarks/bench_claims.py`` collects it too, and raises :class:`ClaimFailed` when
    ``holds`` is false (unless :func:`report_only`). Returns ``holds``. For results that vary
    with the seed use :func:`check`, which weighs the effect against the spread.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"claim must be a non-empty sentence, got {claim!r}")
    if not isinstance(holds, (bool, np.bool_)):
        raise ValueError(f"holds must be a bool (the claim's test), got {type(holds).__name__}")
    if not isinstance(evidence, str):
        raise ValueError(f"evidence must be a string, got {type(evidence).__name__}")
    shown = f"{evidence} " if evidence else ""
    line = f"{'HOLDS' if holds else 'FAILS'}: {claim}  [{shown}-> exact]"
    print(line)
    if not holds and not report_only():
        raise ClaimFailed(line)
    return bool(holds)


def per_seed(table: object, column: str = "accuracy", **where: object) -> np.ndarray:
    """The ``column`` of the rows of a tidy results ``table`` (a DataFrame with a ``seed``
    column, as every comparison in the book returns) that match every ``where`` condition,
    in seed order: one side of a claim (every chapter's claim cells), e.g.
    ``per_seed(results, method="fine_tune", budget=10)``.

    Raises ValueError if a column is missing, nothing matches, or a seed appears twice among
    the matching rows (the conditions do not pick one run per seed).
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in ("seed", column, *where) if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; it has {list(table.columns)}")
    keep = np.ones(len(table), dtype=bool)
    for key, value in where.items():
        keep &= (table[key] == value).to_numpy()
    rows = table[keep]
    if rows.empty:
        raise ValueError(f"no row of table matches {where}")
    if rows.seed.duplicated().any():
        raise ValueError(f"the rows matching {where} repeat a seed: add a condition that "
                         f"picks one run per seed")
    return rows.sort_values("seed", kind="stable")[column].to_numpy()


def stop_on_failure(stop: bool) -> None:
    """Whether a claim that does not hold stops the notebook (every chapter's parameters cell).

    ``True`` (the default): :func:`check` and :func:`verify` raise :class:`ClaimFailed`, so
    strict nbval guards the prose of the default run. Each notebook's parameters cell calls
    ``claims.stop_on_failure(not FULL)``: the full run (``FULL = True``, Colab or a GPU) has
    other budgets, seeds and grids, its prose says which claims it changes, and it should
    print ``FAILS: ...`` for those and run to the end rather than stop after an hour of
    training. This kernel keeps the setting until it is called again.
    """
    global _STOP
    if not isinstance(stop, (bool, np.bool_)):
        raise ValueError(f"stop must be a bool, got {type(stop).__name__}")
    _STOP = bool(stop)


def report_only() -> bool:
    """True when a failing claim is printed, not raised: ``stop_on_failure(False)`` was
    called (a notebook's full run), or ``TLUTILS_CLAIMS_REPORT_ONLY`` is set, so that
    ``benchmarks/bench_claims.py`` can run a notebook to the end under perturbed settings and
    collect every verdict (section 5.8)."""
    if not _STOP:
        return True
    return os.environ.get("TLUTILS_CLAIMS_REPORT_ONLY", "").strip().lower() in {"1", "true",
                                                                               "yes", "on"}
