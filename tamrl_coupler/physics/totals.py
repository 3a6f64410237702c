"""Global and latitude-band totals of GPP, Reco and NEE (PgC) of any gridded output: per output period, per calendar
month and per calendar year, with the spread of each total.

A total is Σ_cells Σ_periods flux x land area x days: fluxes per m2 of land (gC m-2 d-1) times the cell's area times
its land fraction (the weight, m2 of land). The spread of a total depends on how the errors of cells and periods
are correlated, which the per-cell spread does not say. Two bounds are given:

* ``correlated``: errors fully correlated between cells and periods (the spreads add): an upper bound;
* ``independent``: errors independent between cells but fully correlated in time within the total's period
  (each cell's spreads add over time, cells add in quadrature): a lower bound for sums over a year, as model-tower
  errors stay correlated for weeks (Chevallier et al. 2012) and lose their spatial correlation beyond ~200 km.

Sums are exact (:func:`exact_sums`: correctly rounded, the same number as ``math.fsum``), so a total does not depend
on the order of the cells or how they were split over ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PG = 1.0e15  # g per Pg
# latitude bands (degrees north, lower edge inclusive): southern extratropics, the tropics by hemisphere, northern
# temperate, northern boreal and arctic
BANDS: tuple[tuple[float, float], ...] = ((-90.0, -23.5), (-23.5, 0.0), (0.0, 23.5), (23.5, 50.0), (50.0, 90.0))
FLUXES = ("gpp", "reco", "nee")
SPREAD_ASSUMPTIONS = {
    "correlated": "errors fully correlated between cells and in time (spreads add): an upper bound",
    "independent": "errors independent between cells, fully correlated in time within the period (cells add in "
                   "quadrature)",
}


_EXP_OFFSET = 1100  # np.frexp's exponents of finite float64 lie in [-1073, 1024]
_N_EXP = 2200
_HALF_BITS = 26  # a 53-bit mantissa in two halves: sums of up to 2**24 halves stay exact in float64


def exact_sums(values: np.ndarray, groups: np.ndarray | None = None, n_groups: int = 1) -> tuple[float, np.ndarray]:
    """The correctly rounded sum of finite ``values`` (bit for bit ``math.fsum``'s) and of each group (``groups``:
    each value's group in [0, n_groups)), vectorised: each value is split into its binary exponent and two 26-bit
    halves of its mantissa; the halves are summed exactly per (group, exponent) by ``np.bincount`` (integers below
    2**53), and the few occupied exponents are combined as Python integers. Up to 2**24 values per group."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > 1 << 24:
        raise ValueError(f"exact_sums: {v.size} values, at most {1 << 24} per call")
    mant, exp = np.frexp(v)
    ints = (mant * 2.0**53).astype(np.int64)
    key = exp + _EXP_OFFSET
    if groups is not None:
        key += np.asarray(groups, dtype=np.int64).ravel() * _N_EXP
    size = max(n_groups, 1) * _N_EXP
    high = np.bincount(key, weights=(ints >> _HALF_BITS).astype(np.float64), minlength=size).reshape(-1, _N_EXP)
    low = np.bincount(key, weights=(ints & ((1 << _HALF_BITS) - 1)).astype(np.float64),
                      minlength=size).reshape(-1, _N_EXP)
    per_group = np.array([_combine(high[i], low[i]) for i in range(high.shape[0])])
    return _combine(high.sum(axis=0), low.sum(axis=0)), per_group


def _combine(high: np.ndarray, low: np.ndarray) -> float:
    """sum_k (high_k * 2**26 + low_k) * 2**(k - offset - 53), exactly, then rounded once to float64."""
    used = np.flatnonzero((high != 0) | (low != 0))
    if used.size == 0:
        return 0.0
    first = int(used[0])
    n = 0
    for k in used.tolist():
        n += ((int(high[k]) << _HALF_BITS) + int(low[k])) << (k - first)
    shift = first - _EXP_OFFSET - 53
    return float(n << shift) if shift >= 0 else n / (1 << -shift)  # int / int: correctly rounded


def band_name(band: tuple[float, float]) -> str:
    def deg(x: float) -> str:
        return f"{abs(x):g}{'S' if x < 0 else 'N'}" if x else "0"
    return f"{deg(band[0])}-{deg(band[1])}"


def band_index(lat: np.ndarray) -> np.ndarray:
    """Each cell's band (index into BANDS); the north pole belongs to the last band."""
    edges = np.array([b[0] for b in BANDS[1:]])
    return np.searchsorted(edges, np.asarray(lat, dtype=np.float64), side="right")


@dataclass
class TotalsTable:
    """Totals [PgC] per ``label`` (periods, months or years): ``total[flux]`` (L,), ``band[flux]`` (L, B),
    ``spread[(flux, assumption)]`` (L,), ``days`` (L,) covered; ``convention`` says how NEE points."""

    labels: list[str]
    days: np.ndarray
    total: dict[str, np.ndarray]
    band: dict[str, np.ndarray]
    spread: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    convention: str = "NEE = GPP - Reco"


class TotalsAccumulator:
    """Adds one output period at a time (all cells); keeps per-period totals and, for the spreads' independent
    bound, each cell's running sums per calendar month and year (n cells x the months seen)."""

    def __init__(self, weight_m2: np.ndarray, lat: np.ndarray, convention: str = "NEE = GPP - Reco"):
        self.w = np.asarray(weight_m2, dtype=np.float64)
        self.band = band_index(lat)
        self.convention = convention
        self.labels: list[str] = []
        self.starts: list[np.datetime64] = []
        self.days: list[float] = []
        self.total: dict[str, list[float]] = {k: [] for k in FLUXES}
        self.bands: dict[str, list[np.ndarray]] = {k: [] for k in FLUXES}
        self.spread_corr: dict[str, list[float]] = {}
        self._cell_spread: dict[tuple[str, str], np.ndarray] = {}  # (flux, month/year label) -> (n,) g
        self._grams = np.empty_like(self.w)  # one period's g per cell, reused

    def add(self, start: np.datetime64, days: float, fluxes: dict[str, np.ndarray],
            spreads: dict[str, np.ndarray] | None = None, label: str | None = None) -> None:
        """One period from ``start`` lasting ``days`` days: ``fluxes`` gpp, reco, nee (n,) [gC m-2 d-1 per m2 of
        land, NaN = none], ``spreads`` the same fluxes' spreads."""
        start = np.datetime64(start, "s")
        self.starts.append(start)
        self.labels.append(label or str(start))
        self.days.append(float(days))
        for k in FLUXES:
            g = self.grams(fluxes[k], days)
            total, bands = exact_sums(g, self.band, len(BANDS))
            self.total[k].append(total / PG)
            self.bands[k].append(bands / PG)
        if spreads:
            month = str(start.astype("datetime64[M]"))
            year = month[:4]
            for k, s in spreads.items():
                gs = self.grams(s, days)
                self.spread_corr.setdefault(k, []).append(exact_sums(gs)[0] / PG)
                for key in (month, year):
                    acc = self._cell_spread.setdefault((k, key), np.zeros_like(gs))
                    acc += gs

    def grams(self, flux: np.ndarray, days: float) -> np.ndarray:
        """``flux`` [gC m-2 d-1 per m2 of land] over ``days`` as g per cell (NaN = 0), in a reused buffer."""
        g = self._grams
        np.multiply(np.asarray(flux, dtype=np.float64).ravel(), self.w, out=g)
        np.nan_to_num(g, copy=False)
        g *= days
        return g

    def periods(self) -> TotalsTable:
        """One row per added period (the independent bound of a single period: cells in quadrature)."""
        return TotalsTable(list(self.labels), np.array(self.days), {k: np.array(v) for k, v in self.total.items()},
                           {k: np.array(v).reshape(len(self.labels), len(BANDS)) for k, v in self.bands.items()},
                           {(k, "correlated"): np.array(v) for k, v in self.spread_corr.items()},
                           self.convention)

    def by(self, unit: str) -> TotalsTable:
        """Rows per calendar month (``unit`` 'M') or year ('Y') of the periods' starts."""
        keys = [str(np.datetime64(s, unit)) for s in self.starts]
        labels = list(dict.fromkeys(keys))
        idx = np.array([labels.index(k) for k in keys])
        days = np.bincount(idx, weights=self.days, minlength=len(labels))
        total = {k: np.array([math.fsum(np.array(v)[idx == i].tolist()) for i in range(len(labels))])
                 for k, v in self.total.items()}
        band = {k: np.stack([np.sum(np.array(v).reshape(len(keys), len(BANDS))[idx == i], axis=0)
                             for i in range(len(labels))]) for k, v in self.bands.items()}
        spread = {}
        for k, v in self.spread_corr.items():
            spread[(k, "correlated")] = np.array([math.fsum(np.array(v)[idx == i].tolist()) for i in
                                                  range(len(labels))])
            spread[(k, "independent")] = np.array([math.sqrt(math.fsum((self._cell_spread[(k, lab)] ** 2).tolist()))
                                                   / PG for lab in labels])
        return TotalsTable(labels, days, total, band, spread, self.convention)


def totals_of(fields: dict[str, np.ndarray], starts: np.ndarray, days: np.ndarray, weight_m2: np.ndarray,
              lat: np.ndarray, convention: str = "NEE = GPP - Reco",
              spreads: dict[str, np.ndarray] | None = None) -> TotalsAccumulator:
    """Totals of (cells, T) fields over periods ``starts`` (T,) lasting ``days`` (T,)."""
    acc = TotalsAccumulator(weight_m2, lat, convention)
    for t in range(len(starts)):
        acc.add(starts[t], float(days[t]), {k: fields[k][:, t] for k in FLUXES},
                None if spreads is None else {k: v[:, t] for k, v in spreads.items()})
    return acc


def format_table(table: TotalsTable, what: str, bands: bool = True) -> list[str]:
    """Lines to print: one per row, totals of GPP, Reco, NEE in PgC (with the spread bounds where known), then the
    latitude bands."""
    lines = [f"global totals {what} (PgC; land-fraction weighted; {table.convention}; spread of a total: "
             f"[independent cells .. fully correlated])"]
    for i, lab in enumerate(table.labels):
        parts = []
        for k in FLUXES:
            txt = f"{k.upper() if k != 'reco' else 'Reco'} {table.total[k][i]:8.3f}"
            if (k, "correlated") in table.spread:
                lo = table.spread.get((k, "independent"), np.full(len(table.labels), np.nan))[i]
                txt += f" +-[{lo:.3f}..{table.spread[(k, 'correlated')][i]:.3f}]"
            parts.append(txt)
        lines.append(f"  {lab:<10} ({table.days[i]:g} d): " + "  ".join(parts))
        if bands:
            lines.append("      bands NEE/GPP: " + "  ".join(
                f"{band_name(b)} {table.band['nee'][i, j]:.2f}/{table.band['gpp'][i, j]:.2f}"
                for j, b in enumerate(BANDS)))
    return lines


def table_attributes(table: TotalsTable, prefix: str) -> dict[str, str]:
    """Global attributes of a file: ``{prefix}_<flux>_PgC`` per row, and the labels, the bands and the meaning."""
    out = {f"{prefix}_labels": " ".join(table.labels),
           f"{prefix}_days": " ".join(f"{d:g}" for d in table.days)}
    for k in FLUXES:
        out[f"{prefix}_{k}_PgC"] = " ".join(f"{v:.9g}" for v in table.total[k])
        for j, b in enumerate(BANDS):
            out[f"{prefix}_{k}_PgC_{band_name(b)}"] = " ".join(f"{v:.6g}" for v in table.band[k][:, j])
    for (k, a), v in table.spread.items():
        out[f"{prefix}_{k}_spread_{a}_PgC"] = " ".join(f"{x:.6g}" for x in v)
    return out


def totals_attributes(acc: TotalsAccumulator) -> dict[str, str]:
    """What a file says about its totals: per calendar month and year, bands, spreads and their meaning."""
    out = {"totals_definition": "sum over cells of flux per m2 of land x cell area x land fraction x days, PgC; "
                                f"{acc.convention}; latitude bands " + ", ".join(band_name(b) for b in BANDS),
           "totals_spread_correlated": SPREAD_ASSUMPTIONS["correlated"],
           "totals_spread_independent": SPREAD_ASSUMPTIONS["independent"]}
    out.update(table_attributes(acc.by("M"), "totals_monthly"))
    out.update(table_attributes(acc.by("Y"), "totals_annual"))
    return out


__all__ = ["BANDS", "FLUXES", "SPREAD_ASSUMPTIONS", "TotalsAccumulator", "TotalsTable", "band_index", "band_name",
           "format_table", "table_attributes", "totals_attributes", "totals_of"]
