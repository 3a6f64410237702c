"""The global test bed's forcing: CRU CL 1.0 normals (io/crucl.py) on the 1-degree land cells of r360x180, as a
repeated climatological year -- monthly drivers for the monthly model, days for the daily model, 3-hourly CF
forcing for the coupled component (the days' means exactly). docs/testbed.md says how and why.

The 1-degree cells: each is the area-weighted mean of its 0.5-degree CRU cells that have every variable; its land
fraction is their share of the cell's area (CRU's land mask is 0.5-degree cells with data: coasts count whole). CRU
has no radiation for some 0.5-degree land cells (islands and coasts: 10.4 M km2, 7.9 of them warm and wet); their
shortwave is the transmissivity of the nearest cell with radiation times their own top-of-atmosphere insolation,
counted and written into every file (``radiation_filled_cells``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.crucl import CITATION, VARIABLES, read_normals
from tamrl_coupler.ncfiles import write_atomic_netcdf
from tamrl_coupler.physics import climatology as clim
from tamrl_coupler.physics.solar import daily_mean_toa_insolation

CO2_PPM = 390.0
GRID = "r360x180"  # 1 degree, cell centres 0.5 .. 359.5 E, -89.5 .. 89.5 N (CDO's name)
YEAR_DAYS = 365
STEP_SECONDS = 10800
CAP_SHARE = 0.8  # no synthetic day brighter than 80 % of the insolation, nor drier than 80 % of dry air's VPD


@dataclass
class LandCells:
    """The 1-degree land cells, in r360x180 order (latitude slowest, south to north)."""

    lat: np.ndarray
    lon: np.ndarray
    index: np.ndarray  # flat index on the 180 x 360 grid
    area: np.ndarray  # m2, the whole cell
    landfrac: np.ndarray  # share of the cell's area with CRU data
    normals: dict[str, np.ndarray]  # tmp, tmn, tmx, pre, vap [model units], rad [W m-2]: (12, n)
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.lat.size

    @property
    def names(self) -> list[str]:
        return [f"c{i:05d}" for i in self.index]


def _half_degree_toa() -> np.ndarray:
    """(12, 360) monthly-mean top-of-atmosphere insolation at the 0.5-degree rows [W m-2]."""
    lat = -89.75 + 0.5 * np.arange(360)
    doy = np.arange(YEAR_DAYS) + 1.0
    toa = daily_mean_toa_insolation(lat[None, :], doy[:, None])
    month = clim.month_of_day_index()
    return np.stack([toa[month == k].mean(axis=0) for k in range(12)])


def _fill_radiation(rad: np.ndarray, have_all_but_rad: np.ndarray) -> tuple[np.ndarray, int]:
    """Shortwave for 0.5-degree cells without it: the nearest cell's transmissivity (on the sphere) times the
    cell's own insolation. Returns the filled (12, 360, 720) field and the number of cells filled."""
    from scipy.spatial import cKDTree

    ok = np.isfinite(rad).all(axis=0)
    todo = have_all_but_rad & ~ok
    if not todo.any():
        return rad, 0
    lat = np.deg2rad(-89.75 + 0.5 * np.arange(360))
    lon = np.deg2rad(0.25 + 0.5 * np.arange(720))
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    _, nearest = cKDTree(xyz[ok]).query(xyz[todo])
    toa = _half_degree_toa()  # (12, 360)
    rows_ok, rows_todo = np.nonzero(ok)[0], np.nonzero(todo)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(toa[:, rows_ok] > 0, rad[:, ok] / toa[:, rows_ok], 0.0)
    out = rad.copy()
    out[:, todo] = tau[:, nearest] * toa[:, rows_todo]
    return out, int(todo.sum())


def land_fraction_from_mask(path: str | Path) -> np.ndarray:
    """(180, 360) land fraction of the 1-degree cells (r360x180 order) from the GLDAS 0.25-degree land mask
    (``GLDAS_mask``, 60S-90N, 0 water / 1 land): the area-weighted share of its 0.25-degree land cells."""
    from tamrl_coupler.ncfiles import open_netcdf, read_array

    where = f"land mask {path}"
    with open_netcdf(path, "land mask") as ds:
        if "GLDAS_mask" not in ds.variables:
            raise InputError(f"{where}: variable 'GLDAS_mask' is missing (the GLDAS 0.25-degree land mask)")
        mask = np.asarray(read_array(ds["GLDAS_mask"], ..., where), dtype=np.float64).reshape(600, 1440)
        lat0 = float(ds["lat"][0])
        lon0 = float(ds["lon"][0])
    if abs(lat0 + 59.875) > 1e-3 or abs(lon0 + 179.875) > 1e-3:
        raise InputError(f"{where}: first cell at lat {lat0}, lon {lon0}; expected -59.875, -179.875 (GLDAS 0.25)")
    full = np.zeros((720, 1440))
    full[120:] = np.roll(np.nan_to_num(mask), 720, axis=1)  # longitudes 0.125 .. 359.875, latitudes from -89.875
    w = np.cos(np.deg2rad(-89.875 + 0.25 * np.arange(720)))[:, None] * np.ones((1, 1440))
    return (full * w).reshape(180, 4, 360, 4).sum(axis=(1, 3)) / w.reshape(180, 4, 360, 4).sum(axis=(1, 3))


def cru_land_cells(directory: str | Path, fill_radiation: bool = True, landmask: str | Path | None = None
                   ) -> LandCells:
    """The 1-degree land cells and their monthly normals from the CRU CL 1.0 archives in ``directory``.

    ``landmask``: the GLDAS 0.25-degree land mask, whose finer coastlines give the land fraction (CRU's 0.5-degree
    data mask counts coastal cells whole: 146.4 M km2 of land against the mask's 133.4); cells the mask calls
    water are left out. Without it, the share of 0.5-degree CRU cells with data."""
    grids = read_normals(directory)
    values = {k: g.values for k, g in grids.items()}
    have = {k: np.isfinite(v).all(axis=0) for k, v in values.items()}
    all_but_rad = np.logical_and.reduce([h for k, h in have.items() if k != "rad"])
    n_filled = 0
    if fill_radiation:
        values["rad"], n_filled = _fill_radiation(values["rad"], all_but_rad)
        have["rad"] = np.isfinite(values["rad"]).all(axis=0)
    valid = all_but_rad & have["rad"]
    # 0.5-degree cell areas (steradians), per row
    lat_edges = np.deg2rad(-90.0 + 0.5 * np.arange(361))
    half_area = np.diff(np.sin(lat_edges)) * np.deg2rad(0.5)  # (360,)
    w = np.where(valid, half_area[:, None], 0.0)  # (360, 720)
    w4 = w.reshape(180, 2, 360, 2)
    wsum = w4.sum(axis=(1, 3))  # (180, 360)
    one_edges = np.deg2rad(-90.0 + np.arange(181))
    one_area = np.diff(np.sin(one_edges)) * np.deg2rad(1.0)  # (180,)
    land = wsum > 0
    rows, cols = np.nonzero(land)
    normals = {}
    for k, v in values.items():
        filled = np.where(valid[None], v, 0.0).reshape(12, 180, 2, 360, 2)
        mean = (filled * w4[None]).sum(axis=(2, 4)) / np.where(land, wsum, 1.0)[None]
        normals[k] = mean[:, rows, cols]
    landfrac = wsum[rows, cols] / one_area[rows]
    land_source = "share of the 0.5-degree CRU cells with data (coastal cells count whole)"
    dropped = 0
    if landmask is not None:
        mask_frac = land_fraction_from_mask(landmask)[rows, cols]
        keep = mask_frac > 0
        dropped = int((~keep).sum())
        rows, cols, landfrac = rows[keep], cols[keep], mask_frac[keep]
        normals = {k: v[:, keep] for k, v in normals.items()}
        land_source = (f"GLDAS 0.25-degree land mask ({Path(landmask).name}; Rodell et al. 2004, NASA GES DISC): the "
                       f"area-weighted share of its land cells; {dropped} CRU cells the mask calls water left out")
    lat = -89.5 + rows.astype(np.float64)
    lon = 0.5 + cols.astype(np.float64)
    radiation_member = VARIABLES["rad"][1]
    attrs = {
        "source": "CRU CL 1.0 monthly climate normals 1961-1990, 0.5 degree (New, Hulme & Jones 1999), aggregated "
                  "to 1 degree (area-weighted mean of the 0.5-degree cells with every variable)",
        "source_files": " ".join(g.source for g in grids.values()),
        "radiation_version": f"{radiation_member} (the 1999 file of crad6190.zip; the 1998 file crad6190.dat "
                             "is 13 % lower and 17 % below tower shortwave)",
        "radiation_filled_cells": str(n_filled),
        "radiation_filling": "0.5-degree land cells without CRU radiation: the nearest cell's transmissivity times "
                             "their own top-of-atmosphere insolation" if fill_radiation else "none (cells left out)",
        "land_fraction": land_source,
        "references": CITATION,
        "license": "CRU CL 1.0: free of charge and without restriction for research, with citation (IPCC DDC)",
    }
    return LandCells(lat, lon, rows * 360 + cols, one_area[rows] * EARTH_RADIUS ** 2, landfrac, normals, attrs)


# ------------------------------------------------------------------------------------------------ the drivers
VPD_RULES = ("diurnal", "mean_temperature")
WEATHER_RULES = ("synthetic", "none")


def daily_fields(cells: LandCells, vpd: str = "diurnal", weather: str = "synthetic",
                 params: clim.WeatherParameters | None = None) -> dict[str, np.ndarray]:
    """The year's days (365, n): tmean, trange [degC], vap [hPa], vpd [hPa], precip [mm d-1], swdown [W m-2].

    ``vpd``: ``diurnal`` (the day's mean of es(T(t)) - e over the 3-hourly diurnal cycle, what towers' VPD_F is)
    or ``mean_temperature`` (es(Tmean) - e, lower: a convex es). ``weather``: ``synthetic``
    (:func:`physics.climatology.synthetic_weather`: wet and dry, clear and cloudy days, monthly means exact) or
    ``none`` (smooth days: every day the interpolated normals)."""
    if vpd not in VPD_RULES or weather not in WEATHER_RULES:
        raise InputError(f"test bed: vpd {vpd!r} / weather {weather!r}; expected one of {VPD_RULES} / "
                         f"{WEATHER_RULES}")
    n = cells.normals
    tmean = clim.monthly_to_daily(n["tmp"])
    trange = clim.monthly_to_daily(n["tmx"] - n["tmn"], non_negative=True)
    vap = clim.monthly_to_daily(n["vap"], non_negative=True)
    sw = clim.daily_shortwave(n["rad"], cells.lat)
    hours = STEP_SECONDS / 3600.0

    def steps(t_days: np.ndarray, d: int) -> np.ndarray:
        return clim.diurnal_temperature(t_days[d], trange[d], cells.lon, hours)

    if vpd == "diurnal":
        day_vpd = np.stack([clim.day_mean_vpd(steps(tmean, d), vap[d])[1] for d in range(tmean.shape[0])])
    else:
        day_vpd = clim.vpd_of_mean_temperature(tmean, vap)
    days = {"tmean": tmean, "swdown": sw, "vpd": day_vpd}
    if weather == "synthetic":
        dry = np.stack([clim.day_mean_vpd(steps(tmean, d), np.zeros(cells.size))[1] for d in range(tmean.shape[0])])
        toa = daily_mean_toa_insolation(cells.lat[None, :], np.arange(tmean.shape[0])[:, None] + 1.0)
        caps = {"vpd": CAP_SHARE * dry, "swdown": np.maximum(CAP_SHARE * toa, sw)}  # never below the normals
        days = clim.synthetic_weather(days, n["pre"], params or clim.WeatherParameters(), caps=caps)
    else:
        days["precip"] = clim.monthly_to_daily(n["pre"], non_negative=True)
    # the vapour pressure of each day that gives its VPD over the day's diurnal cycle (the 3-hourly forcing's), and
    # the VPD that vapour pressure gives (the same unless even dry air could not reach it): daily and 3-hourly agree
    vap = np.stack([clim.vapour_pressure_for_vpd(steps(days["tmean"], d), days["vpd"][d])
                    for d in range(tmean.shape[0])])
    days["vpd"] = np.stack([clim.day_mean_vpd(steps(days["tmean"], d), vap[d])[1] for d in range(tmean.shape[0])])
    return {**days, "trange": trange, "vap": vap}


def monthly_drivers(cells: LandCells, vpd: str = "diurnal") -> dict[str, np.ndarray]:
    """The monthly model's drivers (12, n) in its units: tmin, tmax [degC], swdown [MJ m-2 d-1], vpd [hPa] (the
    month's mean of the days' VPD by rule ``vpd``), precip [mm d-1], co2 [ppm]."""
    n = cells.normals
    days = daily_fields(cells, vpd=vpd, weather="none")
    month = clim.month_of_day_index()
    vpd_m = np.stack([days["vpd"][month == k].mean(axis=0) for k in range(12)])
    return {"tmin": n["tmn"], "tmax": n["tmx"], "swdown": n["rad"] * 0.0864, "vpd": vpd_m, "precip": n["pre"],
            "co2": np.full_like(n["tmp"], CO2_PPM)}


def daily_drivers(days: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The daily model's drivers (365, n) from :func:`daily_fields`: tmean [degC], swdown [MJ m-2 d-1], vpd [hPa],
    precip [mm d-1], co2 [ppm]."""
    return {"tmean": days["tmean"], "swdown": days["swdown"] * 0.0864, "vpd": days["vpd"], "precip": days["precip"],
            "co2": np.full_like(days["tmean"], CO2_PPM)}


def year_axis(period: str, years: int, first_year: int = 2001) -> np.ndarray:
    """Period starts of ``years`` repeated 365-day years from ``first_year`` (non-leap years only)."""
    ys = [first_year + k for k in range(years)]
    leap = [y for y in ys if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0]
    if leap:
        raise InputError(f"test bed years {ys[0]}..{ys[-1]} include leap year(s) {leap}: the climatological year "
                         f"has 365 days; start in a year whose run has none (e.g. 2001 for up to 3 years)")
    unit = "M" if period == "monthly" else "D"
    out = []
    for y in ys:
        start = np.datetime64(f"{y}-01-01", unit)
        out.append(start + np.arange(12 if period == "monthly" else YEAR_DAYS))
    return np.concatenate(out).astype("datetime64[ns]")


def write_driver_file(path: str | Path, cells: LandCells, drivers: dict[str, np.ndarray], period: str,
                      years: int = 1, attrs: dict[str, str] | None = None) -> Path:
    """The drivers as a FluxVal-layout file (site = land cell, time), readable by ``tamrl-coupler predict``, with
    the cells' ``cell_area`` and ``landfrac`` (which make predict print global totals). The year is repeated
    ``years`` times."""
    from tamrl_coupler import vocabulary

    time = year_axis(period, years)
    names = cells.names

    def fill(nc: Any) -> None:
        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("title", f"TAM-RL global test bed: {period} drivers of a repeated CRU CL 1.0 climatological "
                              f"year on the 1-degree land cells")
        nc.setncattr("featureType", "timeSeries")
        nc.setncattr("grid", GRID)
        for k, v in {**cells.attrs, **(attrs or {})}.items():
            nc.setncattr(k, v)
        nc.createDimension("site", cells.size)
        nc.createDimension("time", time.size)
        nc.createDimension("name_strlen", 6)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name = "days since 2001-01-01", "proleptic_gregorian", "time"
        t[:] = (time - np.datetime64("2001-01-01", "ns")) / np.timedelta64(1, "D")
        import netCDF4

        s = nc.createVariable("site", "S1", ("site", "name_strlen"))
        s.cf_role, s.long_name = "timeseries_id", "1-degree land cell (c + flat index on r360x180)"
        s[:] = netCDF4.stringtochar(np.array(names, dtype="S6"))
        for nm, vals, units, std in (("lat", cells.lat, "degrees_north", "latitude"),
                                     ("lon", cells.lon, "degrees_east", "longitude")):
            v = nc.createVariable(nm, "f8", ("site",))
            v.units, v.standard_name = units, std
            v[:] = vals
        a = nc.createVariable("cell_area", "f8", ("site",))
        a.units, a.standard_name = "m2", "cell_area"
        a[:] = cells.area
        lf = nc.createVariable("landfrac", "f8", ("site",))
        lf.units, lf.standard_name = "1", "land_area_fraction"
        lf[:] = cells.landfrac
        for name, values in drivers.items():
            v = nc.createVariable(name, "f4", ("site", "time"), zlib=True, complevel=1)
            v.units, v.long_name = vocabulary.DRIVERS[name].units, vocabulary.DRIVERS[name].long_name
            v.coordinates = "lat lon"
            v[:] = np.tile(np.asarray(values, dtype=np.float32).T, (1, years))

    return write_atomic_netcdf(path, fill, "test bed drivers")


def subdaily_day(days: dict[str, np.ndarray], d: int, cells: LandCells, day: np.datetime64
                 ) -> dict[str, np.ndarray]:
    """Day ``d`` of :func:`daily_fields` as 8 three-hourly steps (8, n) in import units, each step's value its
    mean over the step: tas [K] (the diurnal cycle of the day's range around its mean), vpd [Pa] (es(T) - e with the
    day's vapour pressure, whose mean over the day is the day's VPD), rsds [W m-2] (the day's shortwave in the shape
    of the steps' top-of-atmosphere insolation, solar geometry), pr [kg m-2 s-1] (the day's rain spread evenly), co2
    [ppm]. The steps' means are the day's values (to rounding): what the component accumulates into the daily
    model's drivers is what ``predict`` reads from the daily file."""
    from tamrl_coupler.physics.solar import mean_toa_insolation

    hours = STEP_SECONDS / 3600.0
    t = clim.diurnal_temperature(days["tmean"][d], days["trange"][d], cells.lon, hours)
    vpd = clim.day_mean_vpd(t, days["vap"][d])[0]
    toa = np.stack([mean_toa_insolation(cells.lat, cells.lon, day + np.timedelta64(k * STEP_SECONDS, "s"),
                                        STEP_SECONDS) for k in range(8)])
    toa_mean = toa.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsds = np.where(toa_mean > 0, toa * (days["swdown"][d] / toa_mean), 0.0)
    n = cells.size
    return {"tas": t + 273.15, "vpd": vpd * 100.0, "rsds": rsds,
            "pr": np.broadcast_to(days["precip"][d] / 86400.0, (8, n)), "co2": np.full((8, n), CO2_PPM)}


def write_subdaily_month(path: str | Path, cells: LandCells, days: dict[str, np.ndarray], month: np.datetime64,
                         attrs: dict[str, str] | None = None) -> Path:
    """One month of 3-hourly CF point forcing (time, site) for the offline driver (``host.grid: forcing``), with the
    cells' area and land fraction; the days are those of :func:`daily_fields` (the climatological year's)."""
    from tamrl_coupler import vocabulary
    from tamrl_coupler.io.cfcoords import HostGridInfo, write_horizontal_coords

    first = np.datetime64(month, "M").astype("datetime64[D]")
    n_days = int(((np.datetime64(month, "M") + 1).astype("datetime64[D]") - first).astype(np.int64))
    doy0 = int((first - first.astype("datetime64[Y]")).astype(np.int64))
    ref = np.datetime64("2001-01-01T00:00:00")

    def fill(nc: Any) -> None:
        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("title", "TAM-RL global test bed: 3-hourly forcing of a CRU CL 1.0 climatological year")
        for k, v in {**cells.attrs, **(attrs or {})}.items():
            nc.setncattr(k, v)
        nc.createDimension("time", n_days * 8)
        nc.createDimension("nv", 2)
        t0 = ((first - ref).astype("timedelta64[s]").astype(np.float64) + STEP_SECONDS * np.arange(n_days * 8))
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.bounds = ("seconds since 2001-01-01 00:00:00", "proleptic_gregorian",
                                                          "time", "time_bnds")
        t[:] = t0
        nc.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([t0, t0 + STEP_SECONDS], 1)
        space, coords = write_horizontal_coords(nc, HostGridInfo("points", cells.lat, cells.lon,
                                                                 site_names=cells.names))
        for name, values, std, units in (("landfrac", cells.landfrac, "land_area_fraction", "1"),
                                         ("cell_area", cells.area, "cell_area", "m2")):
            v = nc.createVariable(name, "f8", space)
            v.standard_name, v.units = std, units
            v[:] = values
        out = {}
        for name in ("tas", "vpd", "rsds", "pr", "co2"):
            q = vocabulary.IMPORTS[name]
            v = nc.createVariable(name, "f4", ("time", *space), zlib=True, complevel=1, chunksizes=(8, cells.size))
            v.units, v.long_name = q.units, q.long_name
            if q.standard_name:
                v.standard_name = q.standard_name
            v.coordinates = coords
            out[name] = v
        for d in range(n_days):
            steps = subdaily_day(days, (doy0 + d) % YEAR_DAYS, cells, first + np.timedelta64(d, "D"))
            for name, v in out.items():
                v[d * 8:(d + 1) * 8] = steps[name].astype(np.float32)

    return write_atomic_netcdf(path, fill, "test bed 3-hourly forcing")


def read_cell_weights(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``cell_area`` [m2] and ``landfrac`` per site of a site-layout driver file (the test bed's): what makes a
    prediction over it gridded, with global totals. None when the file is not NetCDF or lacks either."""
    from tamrl_coupler.ncfiles import open_netcdf, read_array

    path = Path(path)
    if path.suffix.lower() not in (".nc", ".nc4") or not path.is_file():
        return None
    with open_netcdf(path, "driver file") as ds:
        if "cell_area" not in ds.variables or "landfrac" not in ds.variables:
            return None
        area = np.asarray(read_array(ds["cell_area"], ..., f"{path}, cell_area"), dtype=np.float64)
        lf = np.asarray(read_array(ds["landfrac"], ..., f"{path}, landfrac"), dtype=np.float64)
    if area.shape != lf.shape or area.ndim != 1 or not (np.isfinite(area).all() and np.isfinite(lf).all()):
        raise InputError(f"{path}: cell_area and landfrac must be finite, one value per site")
    return area, lf


__all__ = ["CO2_PPM", "GRID", "LandCells", "VPD_RULES", "WEATHER_RULES", "cru_land_cells", "daily_drivers",
           "daily_fields", "monthly_drivers", "read_cell_weights", "subdaily_day", "write_driver_file",
           "write_subdaily_month", "year_axis"]
