"""Forcing validation: every import value on the cells that matter, every step, against the physical range the
vocabulary declares for it.

Why ranges: the most common coupling bug is a unit mismatch (temperature in degC where K is declared, pressure in
hPa, precipitation in mm/day). Values far outside physical bounds are caught at the step they arrive, with the
field, rank, cell (global index and lat/lon) and step named, before they reach the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.vocabulary import Quantity

FILL_THRESHOLD = 1.0e19  # netCDF default fills (9.97e36) and CESM's spval (1e36) lie above


@dataclass
class CellLocator:
    """Names a cell in error messages: rank, global index and lat/lon."""

    rank: int
    global_index: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    def describe(self, i: int) -> str:
        return (f"rank {self.rank}, cell {int(self.global_index[i])} (global index) at lat {self.lat[i]:.3f}, "
                f"lon {self.lon[i]:.3f}")


def _classify(v: float, spec: Quantity) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "infinite"
    if abs(v) >= FILL_THRESHOLD or v == -9999.0:
        return f"a fill value ({v:g})"
    hint = f"; {spec.hint}" if spec.hint else ""
    return f"{v:g} {spec.units}, outside the physical range [{spec.valid_min:g}, {spec.valid_max:g}]{hint}"


class ForcingValidator:
    """Checks each import field on the cells that matter (land) and applies the fill policy.

    ``policy="error"``: the first bad value raises :class:`InputError` naming field, rank, cell and step.
    ``policy="persist"``: bad values are replaced by the cell's last valid value (an error if there is none).
    ``policy="missing"``: NaN and fill values become NaN, which the model treats as a missing driver (its
    missing-value indicators); out-of-range values are still errors.
    """

    def __init__(self, names: list[str], active: np.ndarray, locator: CellLocator, policy: str = "error",
                 check_range: bool = True):
        """``names``: import fields; ``active``: this rank's host cells that are checked (land)."""
        if policy not in ("error", "persist", "missing"):
            raise InputError(f"fill policy {policy!r} unknown; expected 'error', 'persist' or 'missing'")
        self.active = np.asarray(active, dtype=bool)
        self.locator = locator
        self.policy = policy
        self.check_range = check_range
        self.specs = {n: vocabulary.IMPORTS[n] for n in names}
        n = self.active.size
        self.last_valid = {nm: np.full(n, np.nan) for nm in names} if policy == "persist" else {}
        self._bad = np.zeros(n, dtype=bool)
        self._tmp = np.zeros(n, dtype=bool)

    def check(self, name: str, x: np.ndarray, step_label: str) -> None:
        """Validate ``x`` (this rank's host cells) in place; see the class docstring."""
        spec = self.specs[name]
        bad, tmp = self._bad, self._tmp
        lo, hi = (spec.valid_min, spec.valid_max) if self.check_range else (-FILL_THRESHOLD, FILL_THRESHOLD)
        with np.errstate(invalid="ignore"):
            np.greater_equal(x, lo, out=bad)
            np.less_equal(x, hi, out=tmp)
        bad &= tmp
        if not self.check_range:
            bad &= x != -9999.0
        np.logical_not(bad, out=bad)
        bad &= self.active
        if bad.any() and self.policy == "missing":
            idx = np.flatnonzero(bad)
            vals = x[idx]
            gap = ~np.isfinite(vals) | (np.abs(vals) >= FILL_THRESHOLD) | (vals == -9999.0)
            x[idx[gap]] = np.nan
            idx = idx[~gap]
            if idx.size == 0:
                return
            i = int(idx[0])
            raise InputError(f"forcing field '{name}' at {step_label}: {self.locator.describe(i)} is "
                             f"{_classify(float(x[i]), spec)}")
        if bad.any():
            if self.policy == "persist":
                prev = self.last_valid[name]
                idx = np.flatnonzero(bad)
                missing = idx[np.isnan(prev[idx])]
                if missing.size == 0:
                    x[idx] = prev[idx]
                    np.copyto(prev, x, where=self.active)
                    return
                idx = missing
            else:
                idx = np.flatnonzero(bad)
            i = int(idx[0])
            what = _classify(float(x[i]), spec)
            more = f" ({idx.size} cells bad on this rank)" if idx.size > 1 else ""
            extra = "; fill_policy 'persist' has no earlier valid value for it" if self.policy == "persist" else ""
            raise InputError(f"forcing field '{name}' at {step_label}: {self.locator.describe(i)} is {what}"
                             f"{more}{extra}")
        if self.policy == "persist":
            np.copyto(self.last_valid[name], x, where=self.active)
