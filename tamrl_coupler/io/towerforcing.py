"""Flux towers as a host: their records written as CF forcing on a point set, at a host's sub-daily step, in UTC.

Two sources, one output form (what the offline driver reads with ``host.grid: forcing``, ``model.grid: host``):

* :func:`daily_towers_to_cf_forcing` -- daily tower data (a daily :class:`FluxDataset`, e.g. FLUXNET DD files)
  spread over each day's steps by solar geometry (``physics/subdaily.py``): every step-mean of a day equals the
  tower's daily value, so the component's daily drivers are the tower's. Tower day ``d`` is laid on the UTC day
  of the same date: the component's days are UTC days, and this way it sees exactly the daily drivers that
  ``tamrl-coupler predict`` sees for that day (the diurnal shapes themselves are placed by the sun at UTC time).
* :func:`tower_series_to_cf_forcing` -- a real sub-daily tower record (one site, variables under CF standard names,
  times in the tower's local standard time) with its time axis moved to UTC, which is what the component's clock
  and solar geometry use.

Every variable is written in its import's canonical unit (the vocabulary's), float64, missing values as the fill
value (the run's ``forcing.fill_policy`` decides what they become).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.pointforcing import write_point_forcing
from tamrl_coupler.ncfiles import open_netcdf, read_array, read_time_axis
from tamrl_coupler.physics import subdaily
from tamrl_coupler.physics.units import driver_conversion, import_conversion

_UTC_OFFSET = re.compile(r"UTC\s*([+-])\s*(\d+(?:\.\d+)?)(?::(\d{2}))?")
MAX_UTC_OFFSET = 14.0  # hours: the largest offset of a time zone


def _driver_import(driver: str) -> str:
    """The import a daily driver is made from (the vocabulary's first source)."""
    return vocabulary.DRIVERS[driver].sources[0]


def daily_towers_to_cf_forcing(data: FluxDataset, out: Path, first_day: np.datetime64, n_days: int,
                               step: int = 1800) -> Path:
    """Days ``first_day .. first_day + n_days - 1`` of every site of daily ``data`` as ``step``-second CF forcing
    (tas, rsds, vpd with diurnal shapes; the other drivers held over the day), see the module docstring."""
    if data.period != "daily":
        raise InputError(f"{data.source}: sub-daily forcing is made from daily data, got {data.period}")
    day0 = np.datetime64(first_day, "D")
    index = int((day0 - np.asarray(data.time[0]).astype("datetime64[D]")).astype(np.int64))
    if index < 0 or index + n_days > len(data.time) or n_days < 1:
        raise InputError(f"{data.source}: days {day0} + {n_days} are outside the data ({data.time[0]} to "
                         f"{data.time[-1]})")
    bad = [str(s) for s, a, b in zip(data.sites, data.lat, data.lon, strict=True)
           if not (np.isfinite(a) and np.isfinite(b))]
    if bad:
        raise InputError(f"{data.source}: site(s) {bad[:5]} have no latitude/longitude (the site table gives them)")
    lat, lon = data.lat.astype(np.float64), data.lon.astype(np.float64)
    days = slice(index, index + n_days)
    per_day = len(subdaily.steps_of_day(day0, step))  # an InputError unless the step divides a day
    drivers = [d for d in data.drivers if d in vocabulary.DRIVERS and "daily" in vocabulary.DRIVERS[d].periods
               and np.isfinite(data.drivers[d][:, days]).any()]
    missing = [d for d in vocabulary.required_drivers("daily") if d not in drivers]
    if missing:
        raise InputError(f"{data.source}: required daily driver(s) {missing} have no values from {day0}")
    # daily values in import units (one conversion each, from the vocabulary's units)
    daily = {_driver_import(d): import_conversion(_driver_import(d), vocabulary.DRIVERS[d].units,
                                                  f"{data.source}, driver {d!r}").apply(data.drivers[d][:, days])
             for d in drivers}
    sw_mj = data.drivers["swdown"][:, days]
    vpd_hpa = data.drivers["vpd"][:, days]
    to_mj = driver_conversion("swdown", "rsds").scale
    n_t = n_days * per_day
    steps = {name: np.empty((n_t, data.n_sites)) for name in daily}
    for k in range(n_days):
        day = day0 + np.timedelta64(k, "D")
        rows = slice(k * per_day, (k + 1) * per_day)
        toa = subdaily.toa_steps(lat, lon, day, step)
        clearness = sw_mj[:, k] / np.maximum(toa.mean(axis=0) * to_mj, 1e-9)
        dtr = subdaily.diurnal_temperature_range(clearness, vpd_hpa[:, k])
        tas = subdaily.temperature_steps(daily["tas"][:, k], dtr, subdaily.solar_hours(lon, day, step))
        for name, values in daily.items():
            if name == "tas":
                steps[name][rows] = tas
            elif name == "rsds":
                steps[name][rows] = subdaily.shortwave_steps(values[:, k], toa)
            elif name == "vpd":
                hpa = subdaily.vpd_steps(vpd_hpa[:, k], tas)
                steps[name][rows] = import_conversion("vpd", "hPa", "vpd").apply(hpa)
            else:
                steps[name][rows] = values[:, k]
    seconds = np.arange(n_t, dtype=np.float64) * step
    note = ("each tower day laid on the UTC day of the same date; rsds = daily SW * step TOA insolation / its day "
            "mean; tas = daily mean + DTR/2 * cosine peaking at 15 h local solar time (step mean removed), DTR from "
            "clearness and VPD (physics/subdaily.py); vpd follows es(tas) at constant vapour pressure, scaled to "
            "the daily VPD; other fields held at their daily value. Step means of each day equal the daily values.")
    return _write(out, steps, seconds, step, str(day0), lat, lon, [str(s) for s in data.sites],
                  title=f"daily tower drivers as {step} s CF forcing for tamrl-coupler",
                  source=f"{data.source}: {data.attrs.get('files', '')}", history=note)


def utc_offset_hours(text: str, where: str) -> float:
    """The hours of 'UTC+1' (or 'UTC-5.5', 'UTC+05:30') in a time-base description; an error naming ``where``
    otherwise."""
    m = _UTC_OFFSET.search(text or "")
    if m is None:
        raise InputError(f"{where}: the time base {text!r} does not say its UTC offset (e.g. 'UTC+1'); pass the "
                         "offset explicitly")
    hours = float(m.group(2)) + (int(m.group(3)) / 60.0 if m.group(3) else 0.0)
    return -hours if m.group(1) == "-" else hours


def _position(ds: Any, name: str, where: str) -> float:
    """The tower's latitude or longitude [degrees]: one finite number in a variable ``name``."""
    if name not in ds.variables:
        raise InputError(f"{where}: no variable '{name}' (the tower's position, degrees)")
    value = np.asarray(read_array(ds[name], ..., f"{where}, variable '{name}'"), dtype=np.float64)
    limit = 90.0 if name == "lat" else 360.0
    if value.size != 1 or not np.isfinite(value).all() or abs(float(value.ravel()[0])) > limit:
        raise InputError(f"{where}: variable '{name}' is {value.ravel()[:3]}, expected one number within "
                         f"+-{limit:g} degrees")
    return float(value.ravel()[0])


def tower_series_to_cf_forcing(src: Path, out: Path, utc_offset: float | None = None, site: str | None = None,
                               igbp: str | None = None) -> Path:
    """A one-site sub-daily tower file (time series of forcing under CF standard names, local standard time) as CF
    forcing on a point set with a UTC time axis. ``utc_offset`` [h]: of the file's times (default: read from its
    ``time_base`` attribute, e.g. 'local standard time (UTC+1)'). ``igbp``: land cover to pass as the ``igbp``
    import (default: the file's ``igbp`` attribute, if any)."""
    where = f"tower file {src}"
    with open_netcdf(src, "tower time series") as ds:
        if utc_offset is None:
            utc_offset = utc_offset_hours(getattr(ds, "time_base", ""), where)
        starts, ends, _ = read_time_axis(ds, where)
        lat, lon = (_position(ds, name, where) for name in ("lat", "lon"))
        site = site or str(getattr(ds, "site", Path(src).stem))
        igbp = igbp if igbp is not None else getattr(ds, "igbp", None)
        fields = _tower_fields(ds, where)
        attrs = {k: str(getattr(ds, k)) for k in ("source", "license", "note") if hasattr(ds, k)}
    if not (np.isfinite(utc_offset) and abs(utc_offset) <= MAX_UTC_OFFSET):
        raise InputError(f"{where}: UTC offset {utc_offset} h, expected hours within +-{MAX_UTC_OFFSET:g}")
    shift = np.timedelta64(int(round(utc_offset * 3600)), "s")
    starts_utc = starts - shift
    if ends is None:
        step = np.diff(starts.astype(np.int64))
        if step.size == 0 or (step != step[0]).any():
            raise InputError(f"{where}: records are not evenly spaced and have no time bounds")
        ends = starts + np.timedelta64(int(step[0]), "s")
    ends_utc = ends - shift
    ref = starts_utc[0].astype("datetime64[D]").astype("datetime64[s]")
    t0 = (starts_utc - ref).astype(np.int64).astype(np.float64)
    t1 = (ends_utc - ref).astype(np.int64).astype(np.float64)
    if igbp:
        code = vocabulary.igbp_index([igbp])[0]
        if not np.isfinite(code):
            raise InputError(f"{where}: land cover {igbp!r} is not an IGBP class {list(vocabulary.IGBP_CLASSES)}")
        fields["igbp"] = np.full(t0.size, code)
    fields = {k: v[:, None] for k, v in fields.items()}
    history = (f"times moved from local standard time (UTC{utc_offset:+g}) to UTC; variables converted to the "
               "component's import units")
    return _write(out, fields, t0, None, str(ref), np.array([lat]), np.array([lon]), [site],
                  title=f"tower {site} sub-daily record as CF forcing for tamrl-coupler (UTC)",
                  source="; ".join(f"{k}: {v}" for k, v in attrs.items()) or str(src), history=history, t1=t1)


def _tower_fields(ds: Any, where: str) -> dict[str, np.ndarray]:
    """The file's variables that are import fields (by name, alias or CF standard name), in import units."""
    out: dict[str, np.ndarray] = {}
    for name, var in ds.variables.items():
        for key in (name, getattr(var, "standard_name", None)):
            if key is None or key not in vocabulary.accepted_names(vocabulary.Role.IMPORT):
                continue
            field = vocabulary.canonical_name(vocabulary.Role.IMPORT, key)
            if field in out:
                raise InputError(f"{where}: two variables give import '{field}' (the second is '{name}')")
            conv = import_conversion(field, getattr(var, "units", None), f"{where}, variable '{name}'")
            out[field] = conv.apply(np.asarray(read_array(var, ..., f"{where}, variable '{name}'"),
                                               dtype=np.float64))
            break
    if not out:
        raise InputError(f"{where}: no variable is an import field {sorted(vocabulary.IMPORTS)}")
    return out


def _write(out: Path, fields: dict[str, np.ndarray], t0: np.ndarray, step: int | None, ref: str, lat: np.ndarray,
           lon: np.ndarray, sites: list[str], title: str, source: str, history: str,
           t1: np.ndarray | None = None) -> Path:
    """Point-set CF forcing (``io/pointforcing.py``): records of ``step`` seconds unless their ends ``t1`` are given."""
    return write_point_forcing(out, fields, t0, t0 + step if t1 is None else t1, ref, lat, lon, sites,
                               {"title": title, "source": source, "history": history})


__all__ = ["daily_towers_to_cf_forcing", "tower_series_to_cf_forcing", "utc_offset_hours"]
