"""The launch benchmark's verdict rests on its ratio interval: check the statistic itself."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_launch  # noqa: E402


def test_interval_is_the_geometric_mean_with_students_t_on_the_logarithms():
    ratios = [1.2, 0.9, 1.1, 1.0]
    logs = [math.log(r) for r in ratios]
    half = 3.18 * statistics.stdev(logs) / 2  # t for 3 degrees of freedom, 4 rounds
    mean, low, high = bench_launch.ratio_interval(ratios)
    assert mean == pytest.approx(math.exp(statistics.fmean(logs)))
    assert low == pytest.approx(math.exp(statistics.fmean(logs) - half))
    assert high == pytest.approx(math.exp(statistics.fmean(logs) + half))
    assert low < 1.0 < high  # these rounds disagree too much to call a winner


def test_rounds_that_agree_give_a_narrow_interval_above_one():
    mean, low, high = bench_launch.ratio_interval([1.10, 1.12, 1.11, 1.09, 1.10, 1.11])
    assert 1.0 < low < mean < high < 1.13


def test_between_two_rows_of_the_t_table_the_wider_interval_is_used():
    ratios = [1.0 + 0.01 * (i % 5) for i in range(18)]  # 17 degrees of freedom: not a row
    logs = [math.log(r) for r in ratios]
    _, low, _ = bench_launch.ratio_interval(ratios)
    half = statistics.fmean(logs) - math.log(low)
    assert half == pytest.approx(2.13 * statistics.stdev(logs) / math.sqrt(18))  # row 15


def test_one_round_has_no_interval():
    mean, low, high = bench_launch.ratio_interval([1.05])
    assert mean == pytest.approx(1.05)
    assert math.isnan(low) and math.isnan(high)
