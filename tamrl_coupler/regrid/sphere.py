"""Geometry on the unit sphere: unit vectors of lon/lat points and great-circle polygon areas."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def lonlat_to_xyz(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """Degrees -> unit vectors (..., 3) on the sphere."""
    lo, la = np.deg2rad(np.asarray(lon, np.float64)), np.deg2rad(np.asarray(lat, np.float64))
    c = np.cos(la)
    return np.stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)], axis=-1)


def spherical_polygon_area(corner_lat: np.ndarray, corner_lon: np.ndarray) -> np.ndarray:
    """Great-circle polygon areas (steradians) by a triangle fan from vertex 0 (Eriksson's formula), vectorised.

    Repeated vertices (padding) give zero-area triangles, so padded polygons are fine. The triple product is taken
    of differences from vertex 0, which keeps its relative accuracy for small cells (about 1e-15, not 1e-11).
    """
    v = lonlat_to_xyz(corner_lon, corner_lat)  # (n, nv, 3)
    a = v[:, 0, :]
    total = np.zeros(v.shape[0])
    for k in range(1, v.shape[1] - 1):
        b, c = v[:, k, :], v[:, k + 1, :]
        num = np.einsum("ij,ij->i", a, np.cross(b - a, c - a))
        den = 1.0 + np.einsum("ij,ij->i", a, b) + np.einsum("ij,ij->i", b, c) + np.einsum("ij,ij->i", c, a)
        total += 2.0 * np.arctan2(num, den)
    return np.abs(total)
