"""The daily model's driver history: the last 12 completed calendar months, as monthly means in calendar slots.

Why monthly means and not a window of days: the task encoder must be cheap on 1e5-1e6 cells and its state small. A
cell's climate (normals, seasonal amplitude, dryness) is in its last 12 monthly means; slot k holds the most recent
completed calendar month k (January = 0), NaN while that month has not been seen -- a run with no history (a cold
start) has all slots NaN and the network has learned what to do then. The task embedding z is a function of the
slots only, so it changes once a month.

Two implementations of one rule, tested against each other: :func:`close_months` (stepping: a running sum per
driver, written into its slot when the month ends) and :func:`slot_tables` (training: the same slots for every day
of a crop from the days of a record, vectorised). :func:`bind_day_end` is :func:`accumulate` then
:func:`close_months` in place on preallocated buffers (the coupling component's commit, which allocates nothing);
integer calendar arithmetic and the same floating-point operations make it equal to them bit for bit.
A month's mean needs ``MIN_DAYS`` days with a value (per driver; fewer: NaN).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

N_SLOTS = 12
MIN_DAYS = 15


def month_of_day(day: torch.Tensor) -> torch.Tensor:
    """Days since 1970-01-01 (int64 tensor) -> months since 1970-01 (the proleptic Gregorian civil calendar).

    Integer arithmetic (H. Hinnant's days_from_civil inverse), so it runs on any device without a date library."""
    z = day + 719468
    era = torch.div(z, 146097, rounding_mode="floor")
    doe = z - era * 146097
    yoe = torch.div(doe - torch.div(doe, 1460, rounding_mode="floor") + torch.div(doe, 36524, rounding_mode="floor")
                    - torch.div(doe, 146096, rounding_mode="floor"), 365, rounding_mode="floor")
    doy = doe - (365 * yoe + torch.div(yoe, 4, rounding_mode="floor") - torch.div(yoe, 100, rounding_mode="floor"))
    mp = torch.div(5 * doy + 2, 153, rounding_mode="floor")
    month = torch.where(mp < 10, mp + 3, mp - 9)  # 1..12
    year = yoe + era * 400 + (month <= 2).to(day.dtype)
    return (year - 1970) * 12 + month - 1


def accumulate(acc_sum: torch.Tensor, acc_n: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Add one day's drivers x (n, D) (NaN = missing) to the month's running sums and counts (new tensors)."""
    ok = torch.isfinite(x)
    return acc_sum + torch.where(ok, x, torch.zeros((), dtype=x.dtype, device=x.device)), acc_n + ok.to(acc_n.dtype)


def close_months(slots: torch.Tensor, acc_sum: torch.Tensor, acc_n: torch.Tensor, day: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """After day ``day`` (n,) has been accumulated: cells whose next day starts a new month write the month's means
    into its calendar slot (NaN where fewer than MIN_DAYS values) and restart their sums.

    Returns (slots, acc_sum, acc_n, month_changed (n,) bool); inputs are not modified."""
    month = month_of_day(day)
    ends = month_of_day(day + 1) != month
    if not bool(ends.any()):
        return slots, acc_sum, acc_n, ends
    mean = torch.where(acc_n >= MIN_DAYS, acc_sum / acc_n.clamp(min=1), torch.full_like(acc_sum, float("nan")))
    slot = torch.remainder(month, N_SLOTS)
    onehot = torch.nn.functional.one_hot(slot, N_SLOTS).to(torch.bool) & ends[:, None]  # (n, 12)
    slots = torch.where(onehot[:, :, None], mean[:, None, :], slots)
    keep = (~ends)[:, None]
    return slots, acc_sum * keep, acc_n * keep, ends


def slot_tables(x: np.ndarray, first_day: int, start: int, stop: int, history_from: int) -> np.ndarray:
    """Training side: the slots in force on each day ``start .. stop-1`` of one record.

    x (T, D) the record's daily drivers, its first row on day ``first_day`` (days since 1970-01-01); only days from
    index ``history_from`` on have been seen (the run's start: 0 for a run over the whole record, ``start`` for a
    cold start at the crop). Returns (stop - start, 12, D) float32, NaN = no value -- exactly what stepping the
    ensemble from ``history_from`` holds on those days.
    """
    n_drv = x.shape[1]
    days = first_day + np.arange(len(x))
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    m_first = months[start]
    lo = max(history_from, int(np.searchsorted(months, m_first - N_SLOTS)))
    seg, seg_m = x[lo:stop], months[lo:stop]
    ok = np.isfinite(seg)
    uniq, inv = np.unique(seg_m, return_inverse=True)
    sums = np.zeros((len(uniq), n_drv))
    counts = np.zeros((len(uniq), n_drv))
    np.add.at(sums, inv, np.where(ok, seg, 0.0))
    np.add.at(counts, inv, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts >= MIN_DAYS, sums / np.maximum(counts, 1), np.nan)
    index = {int(m): i for i, m in enumerate(uniq)}
    out = np.full((stop - start, N_SLOTS, n_drv), np.nan, dtype=np.float32)
    crop_months = months[start:stop]
    for m in np.unique(crop_months):
        table = np.full((N_SLOTS, n_drv), np.nan, dtype=np.float32)
        for back in range(N_SLOTS, 0, -1):  # oldest first, so a newer month of the same slot wins
            k = index.get(int(m) - back)
            if k is not None:
                table[(int(m) - back) % N_SLOTS] = means[k]
        out[crop_months == m] = table
    return out


def _bind_month_of_day(day: torch.Tensor, out: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, t3: torch.Tensor,
                       flag: torch.Tensor) -> list:
    """:func:`month_of_day` into ``out`` (int64 (n,)) through the scratch t1..t3 (int64) and ``flag`` (bool)."""
    floor = partial(torch.div, rounding_mode="floor")
    return [
        partial(torch.add, day, 719468, out=t1),  # z
        partial(floor, t1, 146097, out=t2),  # era
        partial(torch.mul, t2, 146097, out=t3), partial(t1.sub_, t3),  # doe
        partial(floor, t1, 1460, out=t3), partial(torch.sub, t1, t3, out=out),
        partial(floor, t1, 36524, out=t3), partial(out.add_, t3),
        partial(floor, t1, 146096, out=t3), partial(out.sub_, t3), partial(floor, out, 365, out=out),  # yoe
        partial(torch.mul, out, 365, out=t3), partial(t1.sub_, t3), partial(floor, out, 4, out=t3),
        partial(t1.sub_, t3), partial(floor, out, 100, out=t3), partial(t1.add_, t3),  # doy
        partial(t1.mul_, 5), partial(t1.add_, 2), partial(floor, t1, 153, out=t1),  # mp
        partial(torch.ge, t1, 10, out=flag), partial(t3.copy_, flag), partial(t1.add_, t3, alpha=-12),
        partial(t1.add_, 3),  # month 1..12
        partial(t2.mul_, 400), partial(out.add_, t2), partial(torch.le, t1, 2, out=flag), partial(t3.copy_, flag),
        partial(out.add_, t3),  # year
        partial(out.sub_, 1970), partial(out.mul_, 12), partial(out.add_, t1), partial(out.sub_, 1),
    ]


def bind_day_end(slots: torch.Tensor, acc_sum: torch.Tensor, acc_n: torch.Tensor, day: torch.Tensor,
                 x: torch.Tensor, month_open: torch.Tensor, bufs) -> list:
    """In place, for cells (n): add day ``day``'s drivers ``x`` (n, D) to the running sums, write the means of a
    month that ends with it into its slot of ``slots`` (n, 12, D) and restart its sums; ``month_open`` (n,) bool
    (any device) <- the month goes on (False where one ended). :func:`accumulate` + :func:`close_months`, bit for
    bit; ``bufs``: the chunk's workspace buffers (``get(name, shape, dtype)``)."""
    n, d = x.shape
    i64 = torch.int64
    m0, m1, day1, t1, t2, t3 = (bufs.get(f"cal_{k}", (n,), i64) for k in ("m0", "m1", "day1", "t1", "t2", "t3"))
    flag, ends, keep = (bufs.get(f"cal_{k}", (n,), torch.bool) for k in ("flag", "ends", "keep"))
    tmp = bufs.get("acc_tmp", (n, d))
    ok, bad = (bufs.get(f"acc_{k}", (n, d), torch.bool) for k in ("ok", "bad"))
    onehot = bufs.get("acc_onehot", (n, N_SLOTS), torch.bool)
    # the masks as numbers in buffers of their own: a bool operand of add_/mul_ would be cast into a new tensor
    okf, keepf = bufs.get("acc_okf", (n, d), acc_n.dtype), bufs.get("acc_keepf", (n,), acc_n.dtype)
    slot_ids = bufs.get("acc_slot_ids", (N_SLOTS,), i64)
    return ([
        # accumulate: finite values only (|x| < inf is false for NaN and infinities)
        partial(torch.abs, x, out=tmp), partial(torch.lt, tmp, float("inf"), out=ok),
        partial(torch.logical_not, ok, out=bad), partial(tmp.copy_, x), partial(tmp.masked_fill_, bad, 0.0),
        partial(acc_sum.add_, tmp), partial(okf.copy_, ok), partial(acc_n.add_, okf),
        # does the next day start another month?
        partial(torch.add, day, 1, out=day1)]
        + _bind_month_of_day(day, m0, t1, t2, t3, flag) + _bind_month_of_day(day1, m1, t1, t2, t3, flag)
        + [partial(torch.ne, m1, m0, out=ends),
           # the month's means where it has MIN_DAYS values (NaN otherwise) into its calendar slot
           partial(torch.clamp, acc_n, min=1, out=tmp), partial(torch.div, acc_sum, tmp, out=tmp),
           partial(torch.lt, acc_n, MIN_DAYS, out=ok), partial(tmp.masked_fill_, ok, float("nan")),
           partial(torch.remainder, m0, N_SLOTS, out=t1), partial(torch.arange, N_SLOTS, out=slot_ids),
           partial(torch.eq, t1[:, None], slot_ids[None, :], out=onehot), partial(onehot.logical_and_, ends[:, None]),
           partial(torch.where, onehot[:, :, None], tmp[:, None, :], slots, out=slots),
           # the sums of an ended month restart
           partial(torch.logical_not, ends, out=keep), partial(keepf.copy_, keep),
           partial(acc_sum.mul_, keepf[:, None]), partial(acc_n.mul_, keepf[:, None]), partial(month_open.copy_, keep)])


class RecordMonths:
    """Monthly means of many records from cumulative daily sums: the slot tables of any months, for any run start,
    in a few vectorised gathers (training batches and whole-record evaluation). Equal to :func:`slot_tables`.

    x (S, T, D) daily drivers of S records on one day axis whose first day is ``first_day`` (days since 1970-01-01).
    """

    def __init__(self, x: np.ndarray, first_day: int):
        ok = np.isfinite(x)
        n_sites, n_days, n_drv = x.shape
        self.sums = np.zeros((n_sites, n_days + 1, n_drv))
        np.cumsum(np.where(ok, x, 0.0), axis=1, out=self.sums[:, 1:])
        self.counts = np.zeros((n_sites, n_days + 1, n_drv), dtype=np.int32)
        np.cumsum(ok, axis=1, out=self.counts[:, 1:])
        months = (first_day + np.arange(n_days)).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        self.first_month = int(months[0])
        n_months = int(months[-1]) - self.first_month + 1
        # month k of the axis covers day indices [bounds[k], bounds[k + 1])
        self.bounds = np.searchsorted(months, self.first_month + np.arange(n_months + 1))

    def tables(self, sites: np.ndarray, months: np.ndarray, history_from: np.ndarray) -> np.ndarray:
        """The slots in force during ``months`` (B, K) (months since 1970-01) of records ``sites`` (B,) for runs
        that started on day index ``history_from`` (B,) -> (B, K, 12, D) float32, NaN = no value."""
        months = np.asarray(months, dtype=np.int64)
        back = (months[..., None] - np.arange(N_SLOTS) - 1) % N_SLOTS + 1  # slot j holds the latest month j before
        k = months[..., None] - back - self.first_month
        known = (k >= 0) & (k < len(self.bounds) - 1)
        k = np.clip(k, 0, len(self.bounds) - 2)
        start = np.maximum(self.bounds[k], np.asarray(history_from)[:, None, None])
        end = np.maximum(self.bounds[k + 1], start)
        s = np.asarray(sites)[:, None, None]
        n = np.where(known[..., None], self.counts[s, end] - self.counts[s, start], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.sums[s, end] - self.sums[s, start]) / np.maximum(n, 1)
        return np.where(n >= MIN_DAYS, mean, np.nan).astype(np.float32)
