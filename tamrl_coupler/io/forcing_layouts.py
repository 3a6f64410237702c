"""The forcing layouts users have, by the names their files use: ERA5 and ERA5-Land as the Copernicus Climate Data
Store delivers them (NetCDF, old packed and new ``valid_time`` layouts, and GRIB), CMIP6 CMOR output, CRU-JRA
(the TRENDY forcing), and plain CF files.

A layout is data, not code (``forcing.layout`` in a run config picks one; a new one is one entry here): for each
import the variable names its files use (the first present wins; a name mapped under ``forcing.variables`` wins
over all), how its amounts are accumulated (``vocabulary.Accumulation``: whether a variable *is* an amount is read
from its units, never assumed), and the unit strings its files write that are not UDUNITS strings.

Sources of the names and units: ERA5 parameter database and the CDS documentation (``t2m``, ``d2m`` K; ``sp`` Pa;
``ssrd``, ``strd`` J m-2 and ``tp`` m accumulated over the hour ending at the stamp in ERA5 hourly data, from 00 UTC
in ERA5-Land; mean rates ``msdwswrf`` / ``avg_sdswrf`` W m-2); the CMIP6 data request (``tas``, ``tasmin``,
``tasmax`` K, ``huss`` 1, ``hurs`` %, ``pr`` kg m-2 s-1, ``rsds``, ``rlds`` W m-2, ``ps`` Pa, ``sfcWind``, ``uas``,
``vas`` m s-1); CRU JRA v2 (Harris 2019, UEA CRU; as distributed to TRENDY): ``tmp``, ``tmin``, ``tmax``
'Degrees Kelvin' (6-hourly, the extremes of each 6 hours), ``pre`` mm/6h, ``dswrf`` J/m2 per 6 h (``tswrf`` W m-2
from v2.2), ``dlwrf`` W/m^2, ``spfh`` kg/kg, ``pres`` Pa, ``ugrd``, ``vgrd`` m/s; the 6-hour totals are over the
6 hours starting at the stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tamrl_coupler.errors import ConfigError
from tamrl_coupler.vocabulary import Accumulation


@dataclass(frozen=True)
class Layout:
    """How one family of forcing files names, accumulates and writes the units of the product's imports."""

    name: str
    description: str
    variables: dict[str, tuple[str, ...]] = field(default_factory=dict)  # import -> names in the files
    accumulation: Accumulation | None = None  # amounts without time bounds; None: refused (bounds needed)
    units: dict[str, str] = field(default_factory=dict)  # a file's unit string -> its UDUNITS meaning
    time_names: tuple[str, ...] = ("time", "valid_time")
    # variables whose values are means over the record spacing ending at the stamp (ERA5's "mean rates"), as the
    # layout's accumulations of ending kind are
    means_ending: tuple[str, ...] = ()
    # a statistic over time (cell_methods "time: mean" ...) stamped at the middle of its interval, as CMOR writes
    # it, for files that lost their time bounds
    centred_means: bool = False


_ERA5_MEANS = ("msdwswrf", "avg_sdswrf", "msdwlwrf", "avg_sdlwrf", "mtpr", "avg_tprate")
_ERA5 = {"tas": ("t2m", "2t"), "tdps": ("d2m", "2d"), "ps": ("sp",), "rsds": ("ssrd", "msdwswrf", "avg_sdswrf"),
         "rlds": ("strd", "msdwlwrf", "avg_sdlwrf"), "pr": ("tp", "mtpr", "avg_tprate"), "uas": ("u10", "10u"),
         "vas": ("v10", "10v"), "sfcWind": ("si10", "10si")}

LAYOUTS: dict[str, Layout] = {x.name: x for x in (
    Layout("cf", "CF files: variables named as the product's imports (tas, rsds, ...), their aliases or CF "
                 "standard names; amounts only with time bounds"),
    Layout("era5", "ERA5 hourly single levels from the CDS (reanalysis-era5-single-levels): NetCDF (packed int16 "
                   "with 'time', or the newer 'valid_time' layout) or GRIB; accumulations over the hour ending at "
                   "the stamp", _ERA5, Accumulation.ENDING, means_ending=_ERA5_MEANS),
    Layout("era5_land", "ERA5-Land hourly from the CDS (reanalysis-era5-land): as ERA5, accumulations from 00 UTC "
                        "up to the stamp", _ERA5, Accumulation.SINCE_00UTC, means_ending=_ERA5_MEANS),
    Layout("cmip6", "CMIP6 CMOR output: one variable per file (tas_3hr_..., pr_day_...), time bounds, CMOR "
                    "calendars", {n: (n,) for n in ("tas", "tasmin", "tasmax", "huss", "hurs", "ps", "pr", "rsds",
                                                     "rlds", "sfcWind", "uas", "vas")}, centred_means=True),
    Layout("crujra", "CRU-JRA v2 (TRENDY) 6-hourly files, one variable per file and year; totals over the 6 hours "
                     "starting at the stamp",
           {"tas": ("tmp",), "tasmin": ("tmin",), "tasmax": ("tmax",), "pr": ("pre",), "rsds": ("dswrf", "tswrf"),
            "rlds": ("dlwrf",), "huss": ("spfh",), "ps": ("pres",), "uas": ("ugrd",), "vas": ("vgrd",)},
           Accumulation.STARTING,
           {"Degrees Kelvin": "K", "degrees kelvin": "K", "mm/6h": "mm", "J/m2": "J m-2"}),
)}


def layout(name: str) -> Layout:
    """The layout called ``name``; an error listing the layouts otherwise."""
    if name not in LAYOUTS:
        raise ConfigError(f"forcing.layout: {name!r} is not known; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]
