"""Sub-period downscaling: a flux for every coupling step whose period total is exactly what the model predicted.

TAM-RL predicts a period-mean rate F (gC m-2 d-1) for a month or a day; the host needs a flux every coupling step
that follows that step's light (GPP) and temperature (Reco). We keep, per cell, the amount E already handed out in
this period. At step k the model's current prediction for the whole period is P = F * period_days (from the
partial-period drivers, so P may still move); the remainder R = P - E is split between this step and the rest of
the period in proportion to this step's weight s_k dt and the expected weight of the remaining time, s_hat * r:

    a_k = R * s_k dt / (s_k dt + s_hat r),      and at the last step (r = 0)  a_N = R.

So after the last step E equals the final prediction P_N to rounding (one addition), whatever the weights were.

Weights: GPP follows shortwave, s = rsds + 1 W m-2 (the +1 keeps polar night well defined), and the expected
future weight is the transmissivity seen so far times the top-of-atmosphere insolation still to come in the period
(the rest of the current day integrated exactly, later days at the day-mean insolation); Reco follows
temperature with Q10 = 2, s = 2^((T - 10 degC)/10), the expected future weight is its period mean so far. A target
with no sub-period shape of its own here (``flat``: ET, say, until its physics is written) has weight 1: what is
left of its period total is handed out evenly over the period's remaining time, exact like the others.
If the model's estimate of the period total drops late in a period below what was already handed out, the
remainder (and so a step flux) can be negative: exactness of the total is kept on purpose.

Missing forcing (``nan_aware``, the fill policy 'missing'): a step whose shortwave or temperature is missing on a
cell gets the expected weight of the period's remaining time (its fair share), and the running sums leave it out,
so a missing value never poisons the period's bookkeeping: the period total stays exactly the prediction and no
flux becomes NaN (which the host would otherwise receive as a hole or a zero).
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.physics.solar import ToaInsolation, daily_mean_toa_insolation, day_of_year_and_utc_hours

GPP_LIGHT_FLOOR = 1.0  # W m-2 added to shortwave weights
DEFAULT_TRANSMISSIVITY = 0.7
Q10_RECO = 2.0
T_REF_RECO = 283.15  # K
LOG_Q10_PER_K = float(np.log(Q10_RECO) / 10.0)


def q10_weight(tas_k: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Reco's downscaling weight of a temperature [K]: Q10^((T - 10 degC) / 10), in place into ``out``."""
    np.subtract(tas_k, T_REF_RECO, out=out)
    out *= LOG_Q10_PER_K
    np.exp(out, out=out)
    return out


class Downscaler:
    """Per-cell bookkeeping of what each period has handed out so far; see the module docstring."""

    STATE_ARRAYS = ("emitted_gpp", "emitted_reco", "sum_toa", "sum_sreco")
    NAN_AWARE_ARRAYS = ("time_reco",)  # seconds of the period with a valid temperature, per cell

    def __init__(self, lat: np.ndarray, lon: np.ndarray, nan_aware: bool = False, flat: tuple[str, ...] = ()):
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self.nan_aware = nan_aware
        self.flat = tuple(flat)  # targets handed out evenly (their emitted amounts: emitted_<name>)
        n = self.lat.size
        for name in self._arrays():
            setattr(self, name, np.zeros(n))
        self._valid = np.zeros(n, dtype=bool)
        self._w = np.zeros(n)
        self._what = np.zeros(n)
        self._rem = np.zeros(n)
        self._q = np.zeros(n)
        self._q_day = -1.0
        self._toa = np.zeros(n)
        self._toa_rest = np.zeros(n)
        self._dark = np.zeros(n, dtype=bool)
        self.insolation = ToaInsolation(self.lat, self.lon)  # the cells' top-of-atmosphere insolation

    def _arrays(self) -> tuple[str, ...]:
        return (self.STATE_ARRAYS + (self.NAN_AWARE_ARRAYS if self.nan_aware else ())
                + tuple(f"emitted_{t}" for t in self.flat))

    def reset(self) -> None:
        for name in self._arrays():
            getattr(self, name).fill(0.0)

    def _split(self, rate: np.ndarray, emitted: np.ndarray, w: np.ndarray, what: np.ndarray, dt: float,
               remaining: float, period_days: float, out: np.ndarray) -> None:
        rem = self._rem
        if remaining == 0.0 and dt == period_days * SECONDS_PER_DAY:  # one step per period: the rate itself
            np.multiply(rate, period_days, out=emitted)
            np.copyto(out, rate)
            return
        np.multiply(rate, period_days, out=rem)   # P: predicted period total, gC m-2
        rem -= emitted                              # R = P - E
        if remaining > 0.0:
            w *= dt                                 # s_k dt
            what *= remaining                       # s_hat r
            what += w
            np.divide(w, what, out=w)               # share of this step
            rem *= w                                # a_k
        emitted += rem
        np.multiply(rem, SECONDS_PER_DAY / dt, out=out)   # back to a rate, gC m-2 d-1

    def step(self, gpp_rate: np.ndarray, reco_rate: np.ndarray, rsds: np.ndarray, tas: np.ndarray,
             sum_rsds_dt: np.ndarray, accumulated: float, remaining: float, covered: float, start: np.datetime64,
             dt: float, out_gpp: np.ndarray, out_reco: np.ndarray, reco_to_come: np.ndarray | None = None) -> None:
        """Step fluxes (gC m-2 d-1) into ``out_*`` for the step [start, start + dt).

        ``accumulated``: seconds of this period seen so far, this step included; ``remaining``: seconds from the
        step's end to the period's end; ``covered``: seconds of the period the run covers (the whole period,
        except for a run that starts inside one). ``sum_rsds_dt``: the period's running sum of shortwave * dt,
        this step included (from the accumulator). ``reco_to_come``: the expected Reco weight of the period's
        remaining time where it is known (the same hours of the day before, for a daily period: a morning's
        remaining hours are warmer than its night so far), NaN elsewhere (then: the period's mean weight so far).
        """
        if remaining < 0:
            raise ValueError(f"step ends {-remaining} s after its model period")
        elapsed = accumulated
        period_days = covered / SECONDS_PER_DAY
        # --- GPP: light
        toa = self.insolation.mean(start, dt, 2, out=self._toa)
        toa *= dt
        w, what, valid = self._w, self._what, self._valid
        if self.nan_aware:  # transmissivity from the steps with shortwave only
            np.isfinite(rsds, out=valid)
            np.add(self.sum_toa, toa, out=self.sum_toa, where=valid)
        else:
            self.sum_toa += toa
        np.add(rsds, GPP_LIGHT_FLOOR, out=w)
        if remaining > 0.0:
            self.transmissivity(sum_rsds_dt, out=what)
            what *= self._toa_to_come(start, dt, remaining)
            what += GPP_LIGHT_FLOOR
            if self.nan_aware:  # a step without shortwave: the expected weight
                np.copyto(w, what, where=~valid)
        self._split(gpp_rate, self.emitted_gpp, w, what, dt, remaining, period_days, out_gpp)
        # --- Reco: temperature (Q10)
        q10_weight(tas, w)
        if self.nan_aware:
            self._reco_weights_nan_aware(w, what, dt, remaining)
        else:
            np.multiply(w, dt, out=what)
            self.sum_sreco += what
            if remaining > 0.0:
                np.multiply(self.sum_sreco, 1.0 / elapsed, out=what)
        if reco_to_come is not None and remaining > 0.0:
            np.isfinite(reco_to_come, out=valid)
            np.copyto(what, reco_to_come, where=valid)
        self._split(reco_rate, self.emitted_reco, w, what, dt, remaining, period_days, out_reco)

    def flat_step(self, target: str, rate: np.ndarray, remaining: float, covered: float, dt: float,
                  out: np.ndarray) -> None:
        """The step rate of ``target`` (one of :attr:`flat`) into ``out``: its period total so far handed out evenly
        over the rest of the period (``remaining``, ``covered``, ``dt`` as in :meth:`step`)."""
        self._w.fill(1.0)
        self._what.fill(1.0)
        self._split(rate, getattr(self, f"emitted_{target}"), self._w, self._what, dt, remaining,
                    covered / SECONDS_PER_DAY, out)

    def transmissivity(self, sum_rsds_dt: np.ndarray, out: np.ndarray,
                       sum_toa: np.ndarray | None = None) -> np.ndarray:
        """Shortwave / top-of-atmosphere insolation over the period so far (0-1; 0.7 before the sun has risen),
        from the period's running sum of shortwave * dt, into ``out``. ``sum_toa``: the insolation integral over
        the same time [J m-2] (default: the steps this downscaler has seen)."""
        sum_toa = self.sum_toa if sum_toa is None else sum_toa
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(sum_rsds_dt, sum_toa, out=out)
        np.clip(out, 0.0, 1.0, out=out)
        np.less(sum_toa, 1.0, out=self._dark)
        np.copyto(out, DEFAULT_TRANSMISSIVITY, where=self._dark)
        return out

    def _toa_to_come(self, start: np.datetime64, dt: float, remaining: float) -> np.ndarray:
        """Mean top-of-atmosphere insolation [W m-2] over the rest of the period (``remaining`` seconds from the
        step's end): the rest of the current UTC day integrated exactly -- for a daily period that is all of it,
        and it knows that an afternoon's remaining hours are darker than the day's mean -- and the period's later
        days at the day-mean insolation of this one."""
        end = np.datetime64(start, "s") + np.timedelta64(int(dt), "s")
        to_midnight = float(SECONDS_PER_DAY - (end - end.astype("datetime64[D]")).astype(np.int64))
        today = min(remaining, to_midnight % SECONDS_PER_DAY)
        rest = self.insolation.integral(end, today, out=self._toa_rest)
        if remaining > today:
            doy, _ = day_of_year_and_utc_hours(start)
            if self._q_day != float(doy):  # day-mean insolation changes once a day
                self._q[:] = daily_mean_toa_insolation(self.lat, doy)
                self._q_day = float(doy)
            rest += self._q * (remaining - today)
        rest /= remaining
        return rest

    def _reco_weights_nan_aware(self, w: np.ndarray, what: np.ndarray, dt: float, remaining: float) -> None:
        """Reco weights when temperature may be missing: sums over the valid steps; a missing step (and the
        expected weight) is the period's mean weight so far (Q10 at the reference temperature before any)."""
        valid = self._valid
        np.isfinite(w, out=valid)
        np.multiply(w, dt, out=what)
        np.add(self.sum_sreco, what, out=self.sum_sreco, where=valid)
        np.add(self.time_reco, dt, out=self.time_reco, where=valid)
        what.fill(1.0)
        with np.errstate(divide="ignore"):
            np.divide(1.0, self.time_reco, out=what, where=self.time_reco > 0)
        np.multiply(self.sum_sreco, what, out=what, where=self.time_reco > 0)
        np.copyto(w, what, where=~valid)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"ds_{k}": getattr(self, k) for k in self._arrays()}

    def load_state(self, arrays: dict[str, np.ndarray], elapsed: float) -> None:
        """From :meth:`state_arrays`; ``elapsed``: seconds of the period so far (a restart written without missing
        values had a valid temperature all that time)."""
        for k in self.STATE_ARRAYS + tuple(f"emitted_{t}" for t in self.flat):
            getattr(self, k)[:] = arrays[f"ds_{k}"]
        if self.nan_aware:
            self.time_reco[:] = arrays["ds_time_reco"] if "ds_time_reco" in arrays else elapsed
