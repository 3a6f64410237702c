"""Grids the regridder works on: regular and curvilinear lat-lon, unstructured meshes, and point sets.

A :class:`Grid` always exposes flattened (C-order) cell centres ``lat``/``lon`` in degrees, an optional ``mask``
(1 = cell takes part) and, when known, cell corners (``corner_lat``/``corner_lon``, ``(size, nv)``, counter-clockwise).
Conservative remapping needs corners; bilinear and nearest only need centres.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.gridfiles import read_grid_file
from tamrl_coupler.regrid.sphere import lonlat_to_xyz, spherical_polygon_area

KINDS = ("regular", "curvilinear", "unstructured", "points")
_NAME = re.compile(r"^r(\d+)x(\d+)$")


def _as_f8(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise RegridError(f"grid coordinate {name!r} has non-finite values (NaN/inf/fill): cannot build a grid")
    return arr


def bounds_from_centres(c: np.ndarray, name: str, clip: tuple[float, float] | None) -> np.ndarray:
    """Cell edges halfway between centres, ``(n, 2)``: the one rule for a coordinate without bounds, and only for
    (near-)uniform spacing, where it is unambiguous (anything else is an error, never a guess)."""
    if c.size < 2:
        raise RegridError(f"coordinate {name!r} has {c.size} value(s): cannot infer cell bounds")
    d = np.diff(c)
    if not np.allclose(d, d[0], rtol=1e-5, atol=1e-9 * max(1.0, abs(d[0]))):
        raise RegridError(f"coordinate {name!r} is not uniformly spaced and has no bounds variable: "
                          "cannot infer cell bounds (add CF 'bounds')")
    edges = np.concatenate([[c[0] - d[0] / 2], c[:-1] + d / 2, [c[-1] + d[-1] / 2]])
    if clip is not None:
        edges = np.clip(edges, *clip)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def latlon_cell_areas(lat_bounds: np.ndarray, lon_bounds: np.ndarray) -> np.ndarray:
    """Exact areas (steradians, flat C order) of the cells of a regular lat-lon grid with these ``(n, 2)`` bounds."""
    s = np.sin(np.deg2rad(lat_bounds))
    dy = np.abs(s[:, 1] - s[:, 0])
    dx = np.deg2rad(np.abs(lon_bounds[:, 1] - lon_bounds[:, 0]))
    return np.outer(dy, dx).ravel()


class _Corners:
    """``corner_lat``/``corner_lon`` of a Grid: stored as given, except that a regular grid's are made from its
    bounds only when first asked for (they are 8 values a cell: 55 MB for a 0.25 degree grid that regridding
    between lat-lon grids never needs)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = "_" + name

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        value = obj.__dict__.get(self.name)
        if value is None and obj.__dict__.get("kind") == "regular" and obj.__dict__.get("lat_bounds") is not None \
                and obj.__dict__.get("lon_bounds") is not None:
            obj.__dict__["_corner_lat"], obj.__dict__["_corner_lon"] = _regular_corners(obj.lat_bounds,
                                                                                       obj.lon_bounds)
            value = obj.__dict__[self.name]
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


def _regular_corners(lat_bounds: np.ndarray, lon_bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell corners (size, 4) of a regular grid, counter-clockwise: (S,W) (S,E) (N,E) (N,W)."""
    s, nn = np.sort(lat_bounds, axis=1).T
    w, e = lon_bounds.T
    ny, nx = s.size, w.size
    corner_lat = np.stack([np.repeat(s, nx), np.repeat(s, nx), np.repeat(nn, nx), np.repeat(nn, nx)], 1)
    corner_lon = np.stack([np.tile(w, ny), np.tile(e, ny), np.tile(e, ny), np.tile(w, ny)], 1)
    return corner_lat, corner_lon


@dataclass
class Grid:
    """A horizontal grid; build with :meth:`regular`, :meth:`from_name`, :meth:`from_file`, :meth:`points`."""

    kind: str
    shape: tuple[int, ...]
    lat: np.ndarray                      # (size,) degrees, cell centres, C order
    lon: np.ndarray                      # (size,) degrees
    corner_lat: np.ndarray | None = _Corners()  # (size, nv) degrees, counter-clockwise (regular: made when asked)
    corner_lon: np.ndarray | None = _Corners()
    mask: np.ndarray | None = None       # (size,) int8, 1 = active
    name: str = "grid"
    lat1d: np.ndarray | None = None      # regular grids only: 1-D centres and (n, 2) bounds
    lon1d: np.ndarray | None = None
    lat_bounds: np.ndarray | None = None
    lon_bounds: np.ndarray | None = None
    periodic: bool | None = None         # regular grids, bilinear: wraps in longitude (None: from the span)
    _area: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RegridError(f"grid kind {self.kind!r} unknown; expected one of {KINDS}")
        self.lat = np.ascontiguousarray(self.lat, dtype=np.float64).ravel()
        self.lon = np.ascontiguousarray(self.lon, dtype=np.float64).ravel()
        n = int(np.prod(self.shape))
        if self.lat.size != n or self.lon.size != n:
            raise RegridError(f"grid {self.name!r}: shape {self.shape} has {n} cells but lat has {self.lat.size} "
                              f"and lon {self.lon.size} values")
        if (self.__dict__.get("_corner_lat") is None) != (self.__dict__.get("_corner_lon") is None):
            raise RegridError(f"grid {self.name!r}: corner latitudes and longitudes must both be given")
        if self.__dict__.get("_corner_lat") is not None:
            self.corner_lat = np.asarray(self.corner_lat, dtype=np.float64).reshape(n, -1)
            self.corner_lon = np.asarray(self.corner_lon, dtype=np.float64).reshape(n, -1)
            if self.corner_lat.shape != self.corner_lon.shape:
                raise RegridError(f"grid {self.name!r}: corner lat {self.corner_lat.shape} and lon "
                                  f"{self.corner_lon.shape} differ in shape")
        if self.mask is not None:
            m = np.asarray(self.mask).ravel()
            if m.size != n:
                raise RegridError(f"grid {self.name!r}: mask has {m.size} values, grid has {n} cells")
            self.mask = (m != 0).astype(np.int8)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def regular(cls, lat: ArrayLike, lon: ArrayLike, lat_bounds: ArrayLike | None = None,
                lon_bounds: ArrayLike | None = None, mask: ArrayLike | None = None, name: str = "regular",
                infer_bounds: bool = True) -> Grid:
        """Rectilinear lat-lon grid from 1-D centres; bounds ``(n, 2)`` inferred for uniform spacing if absent."""
        lat = _as_f8(lat, "lat").ravel()
        lon = _as_f8(lon, "lon").ravel()
        if lat_bounds is None and infer_bounds:
            lat_bounds = bounds_from_centres(lat, "lat", (-90.0, 90.0))
        if lon_bounds is None and infer_bounds:
            lon_bounds = bounds_from_centres(lon, "lon", None)
        for nm, b, c in (("lat_bounds", lat_bounds, lat), ("lon_bounds", lon_bounds, lon)):
            if b is not None and np.size(b) != 2 * c.size:
                raise RegridError(f"grid {name!r}: {nm} has {np.size(b)} values, expected {c.size} x 2")
        if lat_bounds is not None:
            lat_bounds = _as_f8(lat_bounds, "lat_bounds").reshape(lat.size, 2)
        if lon_bounds is not None:
            lon_bounds = _as_f8(lon_bounds, "lon_bounds").reshape(lon.size, 2)
        la2, lo2 = np.meshgrid(lat, lon, indexing="ij")
        g = cls("regular", (lat.size, lon.size), la2, lo2, mask=mask, name=name, lat1d=lat, lon1d=lon,
                lat_bounds=lat_bounds, lon_bounds=lon_bounds)
        # corners (S,W) (S,E) (N,E) (N,W), counter-clockwise: made from the bounds when first asked for
        return g

    @classmethod
    def from_name(cls, name: str) -> Grid:
        """CDO-style global grid name ``rNXxNY`` (e.g. ``r360x180``), exactly as CDO defines it.

        Cells of 360/NX x 180/NY degrees; longitude centres ``0, dx, 2dx, ...`` (so edges at ``-dx/2``), latitude
        centres ``-90 + dy/2, ...``. (Grid files that start at -180 are different grids: read them from file.)
        """
        m = _NAME.match(name.strip())
        if not m:
            raise RegridError(f"grid name {name!r} not understood; expected a CDO-style global grid like 'r360x180'")
        nx, ny = int(m.group(1)), int(m.group(2))
        if nx < 1 or ny < 1:
            raise RegridError(f"grid name {name!r}: sizes must be positive")
        dx, dy = 360.0 / nx, 180.0 / ny
        lon = np.arange(nx) * dx
        lon_e = (np.arange(nx + 1) - 0.5) * dx
        lat = -90.0 + (np.arange(ny) + 0.5) * dy
        lat_e = -90.0 + np.arange(ny + 1) * dy
        lat_e[-1] = 90.0
        return cls.regular(lat, lon, np.stack([lat_e[:-1], lat_e[1:]], 1), np.stack([lon_e[:-1], lon_e[1:]], 1),
                           name=name.strip())

    @classmethod
    def points(cls, lat: ArrayLike, lon: ArrayLike, name: str = "points") -> Grid:
        """A set of locations (e.g. flux towers): bilinear or nearest targets, no cell area."""
        lat = _as_f8(lat, "lat").ravel()
        lon = _as_f8(lon, "lon").ravel()
        if lat.shape != lon.shape:
            raise RegridError(f"points: lat has {lat.size} values, lon {lon.size}")
        return cls("points", (lat.size,), lat, lon, name=name)

    @classmethod
    def curvilinear(cls, lat2d: ArrayLike, lon2d: ArrayLike, corner_lat: ArrayLike | None = None,
                    corner_lon: ArrayLike | None = None, mask: ArrayLike | None = None,
                    name: str = "curvilinear") -> Grid:
        """Logically rectangular grid with 2-D centres; corners ``(ny, nx, 4)`` or ``(ny+1, nx+1)`` vertices."""
        lat2d = _as_f8(lat2d, "lat")
        lon2d = _as_f8(lon2d, "lon")
        if lat2d.ndim != 2 or lat2d.shape != lon2d.shape:
            raise RegridError(f"curvilinear grid: lat {lat2d.shape} and lon {lon2d.shape} must be equal 2-D shapes")
        ny, nx = lat2d.shape
        if corner_lat is not None:
            corner_lat = np.asarray(corner_lat, np.float64)
            corner_lon = np.asarray(corner_lon, np.float64)
            if corner_lat.shape == (ny + 1, nx + 1):  # vertex arrays -> per-cell corners (CCW)
                def cells(v):
                    return np.stack([v[:-1, :-1], v[:-1, 1:], v[1:, 1:], v[1:, :-1]], axis=-1)
                corner_lat, corner_lon = cells(corner_lat), cells(corner_lon)
            if corner_lat.shape[:2] != (ny, nx):
                raise RegridError(f"curvilinear grid: corners {corner_lat.shape} do not match centres {(ny, nx)}")
        return cls("curvilinear", (ny, nx), lat2d, lon2d, corner_lat, corner_lon, mask=mask, name=name)

    @classmethod
    def unstructured(cls, lat: ArrayLike, lon: ArrayLike, corner_lat: ArrayLike | None = None,
                     corner_lon: ArrayLike | None = None, mask: ArrayLike | None = None, name: str = "mesh") -> Grid:
        """Cells with centres and polygons ``(n, nv)`` (pad short polygons by repeating their last vertex)."""
        lat = _as_f8(lat, "lat").ravel()
        return cls("unstructured", (lat.size,), lat, lon, corner_lat, corner_lon, mask=mask, name=name)

    @classmethod
    def from_file(cls, path: str | Path, infer_bounds: bool = True, what: str = "grid file") -> Grid:
        """Read a grid from NetCDF: CF lat/lon (1-D or 2-D, with bounds), SCRIP grid file, ESMF mesh or UGRID
        (``what``: the file's role, named in errors)."""
        parts = read_grid_file(Path(path), what)
        if parts.kind == "regular":
            parts.args["infer_bounds"] = infer_bounds
        build = {"": cls, "regular": cls.regular, "curvilinear": cls.curvilinear, "unstructured": cls.unstructured}
        g = build[parts.kind](**parts.args)
        if parts.area is not None:
            g._area = parts.area
        return g

    @classmethod
    def resolve(cls, spec: Grid | str | Path) -> Grid:
        """A Grid, a CDO-style name, or a path."""
        if isinstance(spec, Grid):
            return spec
        s = str(spec)
        if _NAME.match(s.strip()):
            return cls.from_name(s)
        if not Path(s).exists():
            raise RegridError(f"grid {s!r} is neither a CDO-style name like 'r360x180' nor an existing file")
        return cls.from_file(s)

    # ------------------------------------------------------------------ properties
    @property
    def size(self) -> int:
        return int(self.lat.size)

    @property
    def has_bounds(self) -> bool:
        if self.kind == "regular" and self.lat_bounds is not None and self.lon_bounds is not None:
            return True  # (without making the corners)
        return self.corner_lat is not None

    @property
    def area(self) -> np.ndarray | None:
        """Cell areas in steradians: exact lat-lon areas for regular grids, great-circle polygons otherwise."""
        if self._area is None:
            if self.kind == "regular" and self.lat_bounds is not None and self.lon_bounds is not None:
                self._area = latlon_cell_areas(self.lat_bounds, self.lon_bounds)
            elif self.corner_lat is not None:
                self._area = spherical_polygon_area(self.corner_lat, self.corner_lon)
        return self._area

    def require_bounds(self, why: str) -> None:
        """Conservative remapping needs cell corners: an error naming the grid and ``why`` when there are none."""
        if not self.has_bounds:
            raise RegridError(f"grid {self.name!r} ({self.kind}, shape {self.shape}) has no cell bounds, which {why} "
                              "needs; give the file CF 'bounds' or SCRIP corners, or use bilinear/nearest")

    def with_mask(self, mask: ArrayLike) -> Grid:
        """A copy with a land/sea mask (1 = active cell)."""
        import copy

        g = copy.copy(self)
        m = np.asarray(mask).ravel()
        if m.size != self.size:
            raise RegridError(f"mask has {m.size} values but grid {self.name!r} has {self.size} cells "
                              f"(shape {self.shape})")
        g.mask = (m != 0).astype(np.int8)
        return g

    def fingerprint(self) -> str:
        """Stable hash of the geometry and mask: the weight cache key."""
        h = hashlib.sha256()
        h.update(f"{self.kind}|{self.shape}".encode() + (b"" if self.periodic is None else
                                                          f"|periodic={self.periodic}".encode()))
        corners = (self.lat_bounds, self.lon_bounds) if self.kind == "regular" and self.has_bounds else (
            self.corner_lat, self.corner_lon)  # a regular grid's corners follow from its bounds
        for a in (self.lat, self.lon, *corners, self.mask):
            if a is None:
                h.update(b"none")
            else:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def xyz(self) -> np.ndarray:
        """Centres as unit vectors (size, 3), for nearest-neighbour searches on the sphere."""
        return lonlat_to_xyz(self.lon, self.lat)
