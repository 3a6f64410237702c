"""Forcing validation: every import value on the cells that matter, every step, against the physical range the
vocabulary declares for it.

Why ranges: the most common coupling bug is a unit mismatch (temperature in degC where K is declared, pressure in
hPa, precipitation in mm/day). Values far outside physical bounds are caught at the step they arrive, with the
field, rank, cell (global index and lat/lon) and step named, before they reach the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import InputError
from tamrl_coupler.vocabulary import Quantity

FILL_THRESHOLD = 1.0e19  # netCDF default fills (9.97e36) and CESM's spval (1e36) lie above
FILL_POLICIES = ("error", "persist", "missing")
log = logging.getLogger("tamrl_coupler.component")


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
    ``policy="persist"``: gaps (NaN, infinite and fill values) are replaced by the cell's last valid value (an
    error if there is none). ``policy="missing"``: gaps become NaN, which the model treats as a missing driver
    (its missing-value indicators). Under every policy a finite value outside the physical range is an error
    (a unit mistake is never "repaired"), unless ``check_range`` is off. Every substitution is counted
    (:attr:`substitutions`: field -> values replaced), and the first on this rank of each field is logged.

    :meth:`check` writes nothing but the buffer it checks; :meth:`commit` (once every field of a step passed)
    remembers the step's values for ``persist`` and adds the step's counts, so a step that fails can be retried.
    """

    def __init__(self, names: list[str], active: np.ndarray, locator: CellLocator, policy: str = "error",
                 check_range: bool = True):
        """``names``: import fields; ``active``: this rank's host cells that are checked (land)."""
        if policy not in FILL_POLICIES:
            raise InputError(f"fill policy {policy!r} unknown; expected 'error', 'persist' or 'missing'")
        self.active = np.asarray(active, dtype=bool)
        self.locator = locator
        self.policy = policy
        self.check_range = check_range
        self.specs = {n: vocabulary.IMPORTS[n] for n in names}
        n = self.active.size
        self.last_valid = {nm: np.full(n, np.nan) for nm in names} if policy == "persist" else {}
        self.substitutions: dict[str, int] = dict.fromkeys(names, 0)  # committed counts, this rank
        self._pending: dict[str, int] = {}
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
        if not bad.any():
            return
        idx = np.flatnonzero(bad)
        if self.policy != "error":
            vals = x[idx]
            gap = ~np.isfinite(vals) | (np.abs(vals) >= FILL_THRESHOLD) | (vals == -9999.0)
            if not gap.all():  # out of range: an error under every policy
                self._raise(name, x, idx[~gap], step_label, spec)
            if self.policy == "persist":
                prev = self.last_valid[name][idx]
                if np.isnan(prev).any():
                    self._raise(name, x, idx[np.isnan(prev)], step_label, spec,
                                "; fill_policy 'persist' has no earlier valid value for it")
                x[idx] = prev
            else:
                x[idx] = np.nan
            self._pending[name] = self._pending.get(name, 0) + idx.size
            return
        self._raise(name, x, idx, step_label, spec)

    def _raise(self, name: str, x: np.ndarray, idx: np.ndarray, step_label: str, spec: Quantity,
               extra: str = "") -> None:
        i = int(idx[0])
        more = f" ({idx.size} cells bad on this rank)" if idx.size > 1 else ""
        raise InputError(f"forcing field '{name}' at {step_label}: {self.locator.describe(i)} is "
                         f"{_classify(float(x[i]), spec)}{more}{extra}")

    def commit(self, rows: dict[str, np.ndarray], step_label: str) -> None:
        """The step passed everywhere: remember its values (``persist``) and count its substitutions."""
        if self.policy == "persist":
            for name, x in rows.items():
                np.copyto(self.last_valid[name], x, where=self.active)
        for name, n in self._pending.items():
            if self.substitutions[name] == 0:
                what = "its cell's last valid value" if self.policy == "persist" else "missing (NaN)"
                log.warning("forcing field '%s' at %s: %d value(s) on rank %d became %s (fill_policy '%s'); "
                            "further substitutions are counted and reported at the end", name, step_label, n,
                            self.locator.rank, what, self.policy)
            self.substitutions[name] += n
        self._pending.clear()

    def discard(self) -> None:
        """The step failed somewhere: forget its counts (a retry counts them again)."""
        self._pending.clear()
