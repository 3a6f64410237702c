"""Clock, evaluation schedule, block decomposition and forcing validation: the component's small parts."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.decomposition import BlockDecomposition
from tamrl_coupler.component.schedule import EvaluationSchedule
from tamrl_coupler.component.validation import CellLocator, ForcingValidator
from tamrl_coupler.errors import InputError


# --- clock ---------------------------------------------------------------------------------------------------------
def test_clock_steps_days_and_months():
    c = Clock("2015-01-01", "monthly")
    s = c.step(0, 10800)
    assert not s.ends_day and not s.ends_period and s.period_seconds == 31 * 86400
    last = c.step(31 * 86400 - 10800, 10800)
    assert last.ends_day and last.ends_period and last.elapsed == 31 * 86400
    feb = c.step(31 * 86400, 31 * 86400 - 3 * 86400)  # February 2015 as one whole-period step
    assert feb.ends_period and feb.period_seconds == 28 * 86400
    assert c.step_length(31 * 86400, "period") == 28 * 86400
    with pytest.raises(InputError, match="dividing a day"):
        c.step(0, 7000)
    with pytest.raises(InputError, match="not a multiple of the step length"):
        c.step(3600, 10800)
    with pytest.raises(InputError, match="00:00 UTC"):
        Clock("2015-01-01T06:00", "monthly")
    d = Clock("2015-01-01", "daily")
    assert d.step(86400 - 1800, 1800).ends_period


# --- model evaluation schedule (model.update_interval) -------------------------------------------------------------
def _evaluated_steps(interval, dt: int, n_steps: int, start: int = 0, period: str = "monthly") -> list[int]:
    """Indices of the steps that evaluate the ensemble, as the component decides them."""
    clock, sched = Clock("2015-01-01", period), EvaluationSchedule(interval)
    have, out = False, []
    for k in range(n_steps):
        info = clock.step(start + k * dt, dt)
        if sched.due(info, have):
            out.append(k)
            have = True
        if info.ends_period:
            have = False
    return out


def test_evaluation_schedule_intervals_and_period_ends():
    jan = 31 * 8  # 3-hourly steps in January
    # one day: every step of the period's first day, then the step ending each day (the last one ends the period)
    daily = _evaluated_steps(86400, 10800, jan + 10)
    assert daily == list(range(8)) + [8 * d + 7 for d in range(1, 31)] + list(range(jan, jan + 8))  # Feb: 8
    # six hours: the first interval's steps, then every second 3-hourly step; an interval not a multiple of the
    # step: where a boundary is reached or crossed
    assert _evaluated_steps(21600, 10800, 8) == [0, 1, 3, 5, 7]
    assert _evaluated_steps(14400, 10800, 8) == [0, 1, 2, 3, 5, 6, 7]  # 4 h boundaries at 4, 8, 12 ... 24 h
    # intervals not longer than the step: every step (the behaviour before update_interval existed)
    assert _evaluated_steps(3600, 10800, 10) == list(range(10))
    assert _evaluated_steps(10800, 10800, 10) == list(range(10))
    # a run starting inside a period evaluates at once, then at the interval ends
    assert _evaluated_steps(86400, 10800, 10, start=5 * 86400 + 3 * 10800) == [0, 4]
    # daily model period with hourly steps and a 6-hour interval
    assert _evaluated_steps(21600, 3600, 48, period="daily") == [*range(6), 11, 17, 23, *range(24, 30), 35, 41, 47]
    for bad in (7000, 0, True, "period"):
        with pytest.raises(ValueError, match="update_interval"):
            EvaluationSchedule(bad)


# --- decomposition -------------------------------------------------------------------------------------------------
def test_block_decomposition_is_a_partition_of_whole_blocks():
    for n_ranks in (1, 2, 3, 7):
        d = BlockDecomposition(1000, 64, n_ranks)
        ranges = [d.cell_range(r) for r in range(n_ranks)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 1000
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert all(r[0] % 64 == 0 for r in ranges)  # blocks never split between ranks
        assert d.counts().sum() == 1000


# --- validation ----------------------------------------------------------------------------------------------------
def _validator(policy="error"):
    loc = CellLocator(rank=2, global_index=np.array([10, 11, 12, 13]), lat=np.array([1.0, 2, 3, 4]),
                      lon=np.array([5.0, 6, 7, 8]))
    return ForcingValidator(["tas", "pr", "ps"], np.array([True, True, True, False]), loc, policy)


@pytest.mark.parametrize("value,what", [(np.nan, "NaN"), (np.inf, "infinite"), (-9999.0, "a fill value"),
                                        (1e36, "a fill value"), (15.0, "degC was given where K is declared")])
def test_validation_errors_name_field_rank_cell_step(value, what):
    v = _validator()
    x = np.array([280.0, value, 281.0, np.nan])  # the ocean cell (inactive) may hold anything
    with pytest.raises(InputError) as err:
        v.check("tas", x, "step 7 (2015-01-01T21:00:00)")
    msg = str(err.value)
    for part in ("'tas'", "step 7", "rank 2", "cell 11 (global index)", "lat 2.000", "lon 6.000", what):
        assert part in msg, (part, msg)


def test_validation_hints_units_and_persist_policy():
    v = _validator()
    with pytest.raises(InputError, match="hPa was given"):
        v.check("ps", np.array([1000.0, 1e5, 1e5, 0]), "step 0")
    with pytest.raises(InputError, match="mm/day"):
        v.check("pr", np.array([3.0, 0, 0, 0]), "step 0")
    p = _validator("persist")
    x = np.array([280.0, 281.0, 282.0, 0.0])
    p.check("tas", x, "step 0")
    p.commit({"tas": x}, "step 0")  # the step passed on every rank: its values are remembered
    y = np.array([np.nan, 285.0, -9999.0, 0.0])
    p.check("tas", y, "step 1")
    np.testing.assert_array_equal(y[:3], [280.0, 285.0, 282.0])
    assert p.substitutions["tas"] == 0  # counted when the step is committed, not before (a retry counts again)
    p.commit({"tas": y}, "step 1")
    assert p.substitutions["tas"] == 2
    # a unit error is never "repaired" by persisting: out of range is an error under every policy
    with pytest.raises(InputError, match="degC was given"):
        p.check("tas", np.array([15.0, 285.0, 285.0, 0.0]), "step 2")
    fresh = _validator("persist")
    with pytest.raises(InputError, match="no earlier valid value"):
        fresh.check("tas", np.array([np.nan, 1, 1, 1.0]) + 280, "step 0")
