"""tlutils.claims: effect against seed spread, a one-line verdict, and a failing claim raises."""

import math

import pytest

from tlutils import claims


def test_a_clear_paired_gain_holds_and_prints_one_line(capsys):
    v = claims.check("fine-tuning beats scratch", [0.90, 0.92, 0.91], [0.80, 0.83, 0.81])
    assert v.verdict == "a > b" and v.paired and v.n == 3
    assert v.effect == pytest.approx(0.0967, abs=1e-4)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("HOLDS: fine-tuning beats scratch")


def test_a_difference_within_the_spread_is_no_clear_difference():
    v = claims.compare([0.90, 0.70, 0.85], [0.80, 0.82, 0.79])
    assert v.verdict == "no clear difference"
    with pytest.raises(claims.ClaimFailed, match="FAILS"):
        claims.check("a beats b", [0.90, 0.70, 0.85], [0.80, 0.82, 0.79], quiet=True)
    claims.check("no clear difference", [0.90, 0.70, 0.85], [0.80, 0.82, 0.79],
                 expect="no clear difference", quiet=True)


def test_lower_baselines_and_single_seeds():
    assert claims.compare([0.1, 0.12, 0.11], 0.5).verdict == "a < b"  # against a fixed number
    one = claims.compare([0.9], [0.1])
    assert one.verdict == "no clear difference" and math.isinf(one.spread)
    unpaired = claims.compare([0.9, 0.91, 0.92, 0.9], [0.5, 0.52])
    assert not unpaired.paired and unpaired.verdict == "a > b"
    assert claims.compare([0.9, 0.91], [0.5, 0.7], margin=50).verdict == "no clear difference"


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="claim"):
        claims.check("", [1.0], [0.0])
    with pytest.raises(ValueError, match="expect"):
        claims.check("x", [1.0], [0.0], expect="bigger")
    with pytest.raises(ValueError, match="a"):
        claims.compare([float("nan"), 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="b"):
        claims.compare([1.0], [])
    with pytest.raises(ValueError, match="paired"):
        claims.compare([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError, match="margin"):
        claims.compare([1.0, 2.0], [1.0, 1.0], margin=-1)


def test_report_only_prints_without_raising(monkeypatch, capsys):
    monkeypatch.setenv("TLUTILS_CLAIMS_REPORT_ONLY", "1")
    v = claims.check("a beats b", [0.90, 0.70, 0.85], [0.80, 0.82, 0.79])
    assert v.verdict == "no clear difference"
    assert capsys.readouterr().out.startswith("FAILS: a beats b")


def test_a_full_run_prints_a_failing_claim_and_goes_on(monkeypatch, capsys):
    """``stop_on_failure(False)`` (a notebook's ``FULL = True`` run) prints ``FAILS`` for
    check and verify and returns; ``True`` (the default) raises again."""
    monkeypatch.delenv("TLUTILS_CLAIMS_REPORT_ONLY", raising=False)
    monkeypatch.setattr(claims, "_STOP", True)
    assert not claims.report_only()
    claims.stop_on_failure(False)
    assert claims.report_only()
    v = claims.check("a beats b", [0.90, 0.70, 0.85], [0.80, 0.82, 0.79])
    assert v.verdict == "no clear difference"
    assert claims.verify("two equals three", 2 == 3) is False
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["FAILS", "FAILS"]
    claims.stop_on_failure(True)
    with pytest.raises(claims.ClaimFailed, match="FAILS: a beats b"):
        claims.check("a beats b", [0.90, 0.70, 0.85], [0.80, 0.82, 0.79])
    with pytest.raises(ValueError, match="stop"):
        claims.stop_on_failure("no")


def test_verify_states_deterministic_claims_in_the_same_format(capsys, monkeypatch):
    monkeypatch.delenv("TLUTILS_CLAIMS_REPORT_ONLY", raising=False)
    assert claims.verify("Adam ends lowest", True, evidence="loss 0.1 < 0.3")
    out = capsys.readouterr().out
    assert out == "HOLDS: Adam ends lowest  [loss 0.1 < 0.3 -> exact]\n"
    with pytest.raises(claims.ClaimFailed, match="FAILS: two equals three"):
        claims.verify("two equals three", 2 == 3)
    monkeypatch.setenv("TLUTILS_CLAIMS_REPORT_ONLY", "1")
    assert claims.verify("two equals three", 2 == 3) is False  # printed, not raised
    with pytest.raises(ValueError, match="holds"):
        claims.verify("x", 1)
    with pytest.raises(ValueError, match="claim"):
        claims.verify("", True)


def test_per_seed_picks_one_run_per_seed_in_seed_order():
    import numpy as np
    import pandas as pd

    table = pd.DataFrame({"method": ["a", "a", "b", "b", "a"], "budget": [1, 1, 1, 1, 10],
                          "seed": [1, 0, 0, 1, 0], "accuracy": [0.2, 0.1, 0.3, 0.4, 0.9]})
    np.testing.assert_array_equal(claims.per_seed(table, method="a", budget=1), [0.1, 0.2])
    np.testing.assert_array_equal(claims.per_seed(table, "budget", method="b"), [1, 1])
    with pytest.raises(ValueError, match="repeat a seed"):
        claims.per_seed(table, method="a")
    with pytest.raises(ValueError, match="no row"):
        claims.per_seed(table, method="c")
    with pytest.raises(ValueError, match="lr"):
        claims.per_seed(table, lr=1e-3)
    with pytest.raises(ValueError, match="table"):
        claims.per_seed([0.1, 0.2], method="a")
