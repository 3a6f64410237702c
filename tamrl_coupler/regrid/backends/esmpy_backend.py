"""Weights from ESMF through esmpy (HPC sites, conda): grids, meshes and location streams, all ESMF methods.

esmpy is imported lazily, so the package works without it; ``available()`` says whether it imports. Index order:
ESMF's sequence index of a 2-D grid with dims ``[nx, ny]`` is ``i + nx*j``, the C-order flattening of ``(ny, nx)``.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid
from tamrl_coupler.regrid.weights import Weights, canonical_csr

NAME = "esmpy"
_esmpy = None
_manager = None
_why_not = ""


def _import():
    """esmpy, or None; any failure (not installed, ESMFMKFILE unset, version mismatch) is kept in ``why_not()``."""
    global _esmpy, _why_not
    if _esmpy is None and not _why_not:
        try:
            import esmpy
        except ImportError as exc:
            try:
                import ESMF as esmpy  # noqa: N811  (esmpy < 8.4 was called ESMF)
            except ImportError:
                _why_not = f"esmpy not importable ({exc})"
                return None
        except Exception as exc:  # esmpy raises its own errors at import (missing esmf.mk, version mismatch)
            _why_not = f"esmpy import failed: {type(exc).__name__}: {exc}"
            return None
        _esmpy = esmpy
    return _esmpy


def available() -> bool:
    return _import() is not None


def why_not() -> str:
    _import()
    return _why_not


def supports(src: Grid, dst: Grid, method: str) -> bool:
    if not available() or src.kind == "points":
        return False
    if method.startswith("conservative"):
        return src.has_bounds and dst.has_bounds and dst.kind != "points"
    return method in ("bilinear", "patch", "nearest_s2d", "nearest_d2s")


def _methods(E):
    return {"conservative": E.RegridMethod.CONSERVE, "conservative_2nd": E.RegridMethod.CONSERVE_2ND,
            "bilinear": E.RegridMethod.BILINEAR, "patch": E.RegridMethod.PATCH,
            "nearest_s2d": E.RegridMethod.NEAREST_STOD, "nearest_d2s": E.RegridMethod.NEAREST_DTOS}


def _is_global_lon(g: Grid) -> bool:
    return g.kind == "regular" and g.lon_bounds is not None and abs(
        np.sum(np.abs(g.lon_bounds[:, 1] - g.lon_bounds[:, 0])) - 360.0) < 1e-6


def _reaches_both_poles(g: Grid) -> bool:
    return g.kind == "regular" and g.lat_bounds is not None and g.lat_bounds.min() <= -90 + 1e-9 and \
        g.lat_bounds.max() >= 90 - 1e-9


def _esmf_grid(E, g: Grid, corners: bool):
    """Structured grid ([nx, ny] index space), centres and optional corners, mask as an item."""
    ny, nx = g.shape
    stag = [E.StaggerLoc.CENTER] + ([E.StaggerLoc.CORNER] if corners else [])
    periodic = _is_global_lon(g)  # like ESMF_RegridWeightGen on global grids: periodic in lon, poles handled
    if periodic:
        grid = E.Grid(np.array([nx, ny]), staggerloc=stag, coord_sys=E.CoordSys.SPH_DEG, num_peri_dims=1,
                      periodic_dim=0, pole_dim=1)
    else:
        grid = E.Grid(np.array([nx, ny]), staggerloc=stag, coord_sys=E.CoordSys.SPH_DEG)
    lon_c = grid.get_coords(0, staggerloc=E.StaggerLoc.CENTER)
    lat_c = grid.get_coords(1, staggerloc=E.StaggerLoc.CENTER)
    lon_c[...] = g.lon.reshape(ny, nx).T
    lat_c[...] = g.lat.reshape(ny, nx).T
    if corners:
        # vertex arrays (ny+1, nx+1) from per-cell corners (SW, SE, NE, NW)
        clat = g.corner_lat.reshape(ny, nx, -1)
        clon = g.corner_lon.reshape(ny, nx, -1)
        if clat.shape[2] != 4:
            raise RegridError(f"grid {g.name!r}: a structured ESMF grid needs 4 corners per cell, got {clat.shape[2]}")
        vlat = np.empty((ny + 1, nx + 1))
        vlon = np.empty((ny + 1, nx + 1))
        vlat[:-1, :-1], vlon[:-1, :-1] = clat[:, :, 0], clon[:, :, 0]
        vlat[:-1, -1], vlon[:-1, -1] = clat[:, -1, 1], clon[:, -1, 1]
        vlat[-1, :-1], vlon[-1, :-1] = clat[-1, :, 3], clon[-1, :, 3]
        vlat[-1, -1], vlon[-1, -1] = clat[-1, -1, 2], clon[-1, -1, 2]
        lon_v = grid.get_coords(0, staggerloc=E.StaggerLoc.CORNER)
        lat_v = grid.get_coords(1, staggerloc=E.StaggerLoc.CORNER)
        if periodic:  # the periodic dimension has nx corners, not nx + 1
            vlon, vlat = vlon[:, :-1], vlat[:, :-1]
        lon_v[...] = vlon.T
        lat_v[...] = vlat.T
    if g.mask is not None:
        grid.add_item(E.GridItem.MASK, staggerloc=E.StaggerLoc.CENTER)
        grid.get_item(E.GridItem.MASK, staggerloc=E.StaggerLoc.CENTER)[...] = g.mask.reshape(ny, nx).T
    return grid


def _esmf_mesh(E, g: Grid):
    """Unstructured mesh: nodes deduplicated from the corner polygons, one element per cell."""
    g.require_bounds("an ESMF mesh")
    nv = g.corner_lat.shape[1]
    pts = np.round(np.stack([g.corner_lon.ravel(), g.corner_lat.ravel()], 1), 10)
    nodes, inverse = np.unique(pts, axis=0, return_inverse=True)
    conn = inverse.reshape(g.size, nv)
    keep = np.ones_like(conn, dtype=bool)  # drop repeated (padding) vertices
    keep[:, 1:] = (conn[:, 1:] != conn[:, :-1]) & (conn[:, 1:] != conn[:, :1])
    counts = keep.sum(1)
    mesh = E.Mesh(parametric_dim=2, spatial_dim=2, coord_sys=E.CoordSys.SPH_DEG)
    n_nodes = nodes.shape[0]
    mesh.add_nodes(n_nodes, np.arange(1, n_nodes + 1), nodes.ravel(), np.zeros(n_nodes, dtype=np.int32))
    elem_conn = conn[keep].astype(np.int32)
    kwargs = {}
    if g.mask is not None:
        kwargs["element_mask"] = g.mask.astype(np.int32)
    mesh.add_elements(g.size, np.arange(1, g.size + 1), counts.astype(np.int32), elem_conn,
                      element_coords=np.stack([g.lon, g.lat], 1).ravel(), **kwargs)
    return mesh


def _field(E, g: Grid, corners: bool, name: str):
    if g.kind == "points":
        ls = E.LocStream(g.size, coord_sys=E.CoordSys.SPH_DEG)
        ls["ESMF:Lon"] = g.lon.copy()
        ls["ESMF:Lat"] = g.lat.copy()
        return E.Field(ls, name=name), ls
    if g.kind in ("regular", "curvilinear"):
        grid = _esmf_grid(E, g, corners)
        return E.Field(grid, name=name, staggerloc=E.StaggerLoc.CENTER), grid
    mesh = _esmf_mesh(E, g)
    return E.Field(mesh, name=name, meshloc=E.MeshLoc.ELEMENT), mesh


def _flat(a, g: Grid) -> np.ndarray:
    a = np.asarray(a)
    return a.T.ravel() if a.ndim == 2 else a.ravel()  # [nx, ny] Fortran index space -> C order of (ny, nx)


def generate(src: Grid, dst: Grid, method: str) -> Weights:
    global _manager
    E = _import()
    if E is None:
        raise RegridError("the esmpy backend needs esmpy (conda install -c conda-forge esmpy, or build ESMF)")
    if method not in _methods(E):
        raise RegridError(f"esmpy backend has no method {method!r}; it offers {sorted(_methods(E))}")
    if _manager is None:
        _manager = E.Manager(debug=False)
    conservative = method.startswith("conservative")
    if conservative:
        src.require_bounds(f"{method} remapping (esmpy)")
        dst.require_bounds(f"{method} remapping (esmpy)")
    sf, _ = _field(E, src, conservative, "src")
    df, _ = _field(E, dst, conservative, "dst")
    kw = {}
    if conservative:
        sfrac, _ = _field(E, src, True, "src_frac")
        dfrac, _ = _field(E, dst, True, "dst_frac")
        kw.update(src_frac_field=sfrac, dst_frac_field=dfrac, norm_type=E.NormType.DSTAREA)
    if src.mask is not None:
        kw["src_mask_values"] = np.array([0], dtype=np.int32)
    if dst.mask is not None and dst.kind != "points":
        kw["dst_mask_values"] = np.array([0], dtype=np.int32)
    if not conservative and not _reaches_both_poles(src):
        # ESMF's pole extrapolation would average a whole boundary row (e.g. GLDAS at 60S) into every point
        # beyond it; a grid that stops short of a pole leaves those points unmapped instead
        kw["pole_method"] = E.PoleMethod.NONE
    rg = E.Regrid(sf, df, regrid_method=_methods(E)[method], unmapped_action=E.UnmappedAction.IGNORE,
                  factors=True, **kw)
    wd = rg.get_weights_dict(deep_copy=True)
    S = canonical_csr(np.asarray(wd["row_dst"]) - 1, np.asarray(wd["col_src"]) - 1, np.asarray(wd["weights"]),
                      dst.size, src.size)
    area_a = area_b = frac_a = frac_b = None
    if conservative:
        sf.get_area()
        area_a = _flat(sf.data, src).copy()
        df.get_area()
        area_b = _flat(df.data, dst).copy()
        frac_a = _flat(kw["src_frac_field"].data, src).copy()
        frac_b = _flat(kw["dst_frac_field"].data, dst).copy()
    rg.destroy()
    return Weights(S, method=method, normalization="destarea", area_a=area_a, area_b=area_b, frac_a=frac_a,
                   frac_b=frac_b, src_shape=src.shape, dst_shape=dst.shape, source=f"{NAME} backend",
                   mask_a=None if src.mask is None else src.mask.astype(np.int32),
                   mask_b=None if dst.mask is None else dst.mask.astype(np.int32))
