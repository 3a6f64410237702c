"""Test and example grids as xESMF's ``xesmf.util`` makes them, so that xESMF code runs with only its import changed:
``grid_2d`` and ``grid_global`` return Datasets with 2-D ``lon``/``lat`` centres on ``(y, x)`` and 2-D ``lon_b``/
``lat_b`` vertices on ``(y_b, x_b)``."""

from __future__ import annotations

import numpy as np

from tamrl_coupler.errors import RegridError


def _grid_1d(start_b: float, end_b: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres and vertices of cells of size ``step`` from ``start_b`` to ``end_b`` (which ``step`` must divide)."""
    n = (end_b - start_b) / step
    if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
        raise RegridError(f"grid from {start_b} to {end_b} in steps of {step}: the span is not a whole number of steps")
    bounds = start_b + step * np.arange(int(round(n)) + 1)
    return 0.5 * (bounds[:-1] + bounds[1:]), bounds


def grid_2d(lon0_b: float, lon1_b: float, d_lon: float, lat0_b: float, lat1_b: float, d_lat: float):
    """A rectilinear grid as 2-D arrays (xESMF's ``util.grid_2d``): cells ``d_lon`` x ``d_lat`` degrees between
    the outer vertices ``lon0_b..lon1_b``, ``lat0_b..lat1_b``."""
    import xarray as xr

    lon, lon_b = _grid_1d(lon0_b, lon1_b, d_lon)
    lat, lat_b = _grid_1d(lat0_b, lat1_b, d_lat)
    lon2, lat2 = np.meshgrid(lon, lat)
    lon2_b, lat2_b = np.meshgrid(lon_b, lat_b)
    return xr.Dataset(coords={"lon": (("y", "x"), lon2, {"standard_name": "longitude", "units": "degrees_east"}),
                              "lat": (("y", "x"), lat2, {"standard_name": "latitude", "units": "degrees_north"}),
                              "lon_b": (("y_b", "x_b"), lon2_b), "lat_b": (("y_b", "x_b"), lat2_b)})


def grid_global(d_lon: float, d_lat: float, lon1: float = 180.0):
    """A global grid of ``d_lon`` x ``d_lat`` degree cells, longitudes from ``lon1 - 360`` to ``lon1`` (xESMF's
    ``util.grid_global``)."""
    return grid_2d(lon1 - 360.0, lon1, d_lon, -90.0, 90.0, d_lat)


def rotated_pole_grid(nx: int, ny: int, d: float, pole_lat: float, pole_lon: float, name: str = "rotated"):
    """A regional rotated-pole grid (as CORDEX domains): ``nx`` x ``ny`` cells of ``d`` degrees centred on the
    rotated equator and meridian, whose north pole lies at geographic (``pole_lat``, ``pole_lon``); a curvilinear
    :class:`~tamrl_coupler.regrid.grid.Grid` with its cell vertices."""
    from tamrl_coupler.regrid.grid import Grid
    from tamrl_coupler.regrid.overlap import unit_vectors

    rlon_b = (np.arange(nx + 1) - nx / 2) * d
    rlat_b = (np.arange(ny + 1) - ny / 2) * d
    # CF's rotated_latitude_longitude: the rotated (0, 0) lies at (90 - pole_lat, pole_lon + 180)
    theta, phi = np.deg2rad(pole_lat - 90.0), np.deg2rad(pole_lon + 180.0)
    ry = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    rz = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi), 0], [0, 0, 1]])

    def geo(rlon: np.ndarray, rlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = unit_vectors(rlon, rlat) @ (rz @ ry).T
        return np.rad2deg(np.arctan2(v[..., 1], v[..., 0])), np.rad2deg(np.arcsin(np.clip(v[..., 2], -1, 1)))

    vlon, vlat = geo(*np.meshgrid(rlon_b, rlat_b))
    clon, clat = geo(*np.meshgrid(0.5 * (rlon_b[:-1] + rlon_b[1:]), 0.5 * (rlat_b[:-1] + rlat_b[1:])))
    return Grid.curvilinear(clat, clon, vlat, vlon, name=name)


def cubed_sphere(n: int, name: str | None = None):
    """An equiangular gnomonic cubed-sphere mesh of ``6 n^2`` cells (as the SE/FV3 dynamical cores' grids), as an
    unstructured :class:`~tamrl_coupler.regrid.grid.Grid` with four corners per cell."""
    from tamrl_coupler.regrid.grid import Grid

    t = np.tan(np.linspace(-np.pi / 4, np.pi / 4, n + 1))
    a, b = np.meshgrid(t, t)
    faces = [(np.array(c, float), np.array(e1, float), np.array(e2, float)) for c, e1, e2 in (
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)), ((0, 1, 0), (-1, 0, 0), (0, 0, 1)), ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
        ((0, -1, 0), (1, 0, 0), (0, 0, 1)), ((0, 0, 1), (0, 1, 0), (-1, 0, 0)), ((0, 0, -1), (0, 1, 0), (1, 0, 0)))]
    corners = []
    for c, e1, e2 in faces:
        v = c + a[..., None] * e1 + b[..., None] * e2
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        corners.append(np.stack([v[:-1, :-1], v[:-1, 1:], v[1:, 1:], v[1:, :-1]], axis=2).reshape(-1, 4, 3))
    v = np.concatenate(corners)
    centre = v.sum(axis=1)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)

    def lonlat(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.rad2deg(np.arctan2(p[..., 1], p[..., 0])), np.rad2deg(np.arcsin(np.clip(p[..., 2], -1, 1)))

    clon, clat = lonlat(v)
    lon, lat = lonlat(centre)
    return Grid.unstructured(lat, lon, clat, clon, name=name or f"C{n}")
