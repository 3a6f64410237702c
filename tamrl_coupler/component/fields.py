"""The component's field registry: names, CF standard names, units, valid ranges, and forcing validation.

Why ranges: the most common coupling bug is a unit mismatch (temperature in degC where K is declared, pressure in
hPa, precipitation in mm/day). Values far outside physical bounds are caught at the step they arrive, with the
field, rank, cell (global index and lat/lon) and step named, before they reach the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler.errors import InputError


@dataclass(frozen=True)
class FieldSpec:
    name: str
    standard_name: str
    units: str
    required: bool
    valid_min: float
    valid_max: float
    regrid: str  # "state" (bilinear) | "flux" (conservative) | "class" (largest overlap)
    hint: str = ""


IMPORT_FIELDS: dict[str, FieldSpec] = {f.name: f for f in (
    FieldSpec("tas", "air_temperature", "K", True, 150.0, 350.0, "state",
              "values below 150 K usually mean degC was given where K is declared"),
    FieldSpec("huss", "specific_humidity", "kg kg-1", True, 0.0, 0.1, "state",
              "values above 0.1 usually mean g kg-1 was given"),
    FieldSpec("ps", "surface_air_pressure", "Pa", True, 3.0e4, 1.2e5, "state",
              "values near 1000 usually mean hPa was given"),
    # period-level alternatives (hosts coupling once per model period, e.g. the monthly FluxVal sites)
    FieldSpec("tasmin", "air_temperature_daily_minimum", "K", False, 150.0, 350.0, "state",
              "values below 150 K usually mean degC was given where K is declared"),
    FieldSpec("tasmax", "air_temperature_daily_maximum", "K", False, 150.0, 350.0, "state",
              "values below 150 K usually mean degC was given where K is declared"),
    FieldSpec("vpd", "water_vapor_saturation_deficit_in_air", "Pa", False, 0.0, 1.0e4, "state",
              "vpd is imported in Pa; values above 1e4 are implausible"),
    FieldSpec("rsds", "surface_downwelling_shortwave_flux_in_air", "W m-2", True, -1.0, 1500.0, "flux"),
    FieldSpec("pr", "precipitation_flux", "kg m-2 s-1", True, -1.0e-8, 0.1, "flux",  # rounding negatives pass
              "values above 0.1 usually mean mm/day or mm/h was given"),
    FieldSpec("rlds", "surface_downwelling_longwave_flux_in_air", "W m-2", False, 0.0, 1000.0, "flux"),
    FieldSpec("sfcWind", "wind_speed", "m s-1", False, 0.0, 100.0, "state"),
    FieldSpec("co2", "mole_fraction_of_carbon_dioxide_in_air", "ppm", False, 100.0, 5000.0, "state",
              "co2 is imported in ppm (umol mol-1); values below 1 usually mean mol mol-1 was given"),
    FieldSpec("lai", "leaf_area_index", "m2 m-2", False, 0.0, 20.0, "state"),
    FieldSpec("landcover", "land_cover_class", "1", False, 0.0, 255.0, "class",
              "IGBP class index as in the model's IGBP_CLASSES"),
)}

EXPORT_FIELDS: dict[str, str] = {  # export name -> CF standard name (kgC m-2 s-1, uptake-positive NEE)
    "gpp": "gross_primary_productivity_of_biomass_expressed_as_carbon",
    "reco": "ecosystem_respiration_carbon_flux",  # no CF standard name exists; accepted as an alias only
    "nee": "surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_all_land_processes"
           "_excluding_anthropogenic_land_use_change",
    "gpp_spread": "gpp_spread", "reco_spread": "reco_spread", "nee_spread": "nee_spread",
}

_IMPORT_ALIASES = {s.standard_name: s.name for s in IMPORT_FIELDS.values()}
_IMPORT_ALIASES.update({"surface_downwelling_shortwave_flux": "rsds", "precipitation": "pr", "wind": "sfcWind",
                        "mole_fraction_of_carbon_dioxide": "co2"})
_EXPORT_ALIASES = {v: k for k, v in EXPORT_FIELDS.items()}


def import_name(name: str) -> str:
    """Short import name for a short name or CF standard name; error lists the accepted names."""
    if name in IMPORT_FIELDS:
        return name
    if name in _IMPORT_ALIASES:
        return _IMPORT_ALIASES[name]
    raise InputError(f"import field {name!r} is not known; expected one of {sorted(IMPORT_FIELDS)} "
                     f"or their CF standard names")


def export_name(name: str) -> str:
    if name in EXPORT_FIELDS:
        return name
    if name in _EXPORT_ALIASES:
        return _EXPORT_ALIASES[name]
    raise InputError(f"export field {name!r} is not known; expected one of {sorted(EXPORT_FIELDS)}")


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


def _classify(v: float, spec: FieldSpec) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "infinite"
    if abs(v) >= FILL_THRESHOLD or v == -9999.0:
        return f"a fill value ({v:g})"
    hint = f"; {spec.hint}" if spec.hint else ""
    return f"{v:g} {spec.units}, outside the physical range [{spec.valid_min:g}, {spec.valid_max:g}]{hint}"


# which imports a step needs: each group is satisfied by one of its alternatives
REQUIRED_GROUPS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("tas",), ("tasmin", "tasmax")),
    (("huss", "ps"), ("vpd",)),
    (("rsds",),),
    (("pr",),),
)


def missing_imports(registered: set[str]) -> list[str]:
    """Descriptions of the required import groups ``registered`` does not satisfy."""
    out = []
    for group in REQUIRED_GROUPS:
        if not any(all(f in registered for f in alt) for alt in group):
            out.append(" or ".join("+".join(alt) for alt in group))
    return out


class ForcingValidator:
    """Checks each import field on the cells that matter (land) and applies the fill policy.

    ``policy="error"``: the first bad value raises :class:`InputError` naming field, rank, cell and step.
    ``policy="persist"``: bad values are replaced by the cell's last valid value (an error if there is none).
    ``policy="missing"``: NaN and fill values become NaN, which the model treats as a missing driver (its
    missing-value indicators); out-of-range values are still errors.
    """

    def __init__(self, names: list[str], active: np.ndarray, locator: CellLocator, policy: str = "error",
                 check_range: bool = True):
        if policy not in ("error", "persist", "missing"):
            raise InputError(f"fill policy {policy!r} unknown; expected 'error', 'persist' or 'missing'")
        self.active = np.asarray(active, dtype=bool)
        self.locator = locator
        self.policy = policy
        self.check_range = check_range
        self.specs = {n: IMPORT_FIELDS[n] for n in names}
        n = self.active.size
        self.last_valid = {nm: np.full(n, np.nan) for nm in names} if policy == "persist" else {}
        self._bad = np.zeros(n, dtype=bool)
        self._tmp = np.zeros(n, dtype=bool)
        self.replaced = 0

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
                    self.replaced += idx.size
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
