"""When the ensemble is evaluated inside a model period (``model.update_interval``).

Why: the period-mean rates the TAM-RL ensemble predicts from a partial period's drivers move slowly (a monthly
mean after 10 days vs after 10 days and 3 hours), while the network is 95-99 % of a coupling step. Between
evaluations the component reuses the period estimate and only the step downscaling (GPP with the step's light,
Reco with its temperature) changes, so period totals still equal the final prediction exactly.

Rule, for a step covering [a, b) seconds from its period start and an interval I: evaluate when the step
reaches or crosses a multiple of I (``b // I > a // I``), when there is no estimate for this period yet (its
first step, or a run that starts inside a period), and always at the period's last step (which commits the state).
Steps shorter than I therefore evaluate at the step that ends each interval; steps of I or longer evaluate every
step (the old behaviour). ``"period"`` evaluates only at a period's first and last steps. The decision depends only
on the time, never on the rank, so every rank evaluates the same steps.
"""

from __future__ import annotations

from tamrl_coupler.component.clock import StepInfo

SECONDS_PER_DAY = 86400


class EvaluationSchedule:
    """Decides per coupling step whether the ensemble runs; see the module docstring."""

    def __init__(self, interval: int | str):
        if interval != "period" and (not isinstance(interval, int) or interval <= 0
                                     or SECONDS_PER_DAY % interval):
            raise ValueError(f"model.update_interval: expected seconds dividing a day or 'period', got {interval!r}")
        self.interval = interval

    def seconds(self, info: StepInfo) -> int:
        """The interval in seconds for the period ``info`` belongs to."""
        return info.period_seconds if self.interval == "period" else int(self.interval)

    def due(self, info: StepInfo, have_estimate: bool) -> bool:
        """Whether the step ``info`` evaluates the ensemble, given whether this period already has an estimate."""
        if info.ends_period or not have_estimate:
            return True
        interval = self.seconds(info)
        return info.elapsed // interval > (info.elapsed - info.dt) // interval
