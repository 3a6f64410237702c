"""Weight generators. ``auto`` picks esmpy when it imports, else the native generator (exact conservative weights
for any pair of grids), else cdo when on PATH (e.g. bilinear from a curvilinear source).

Each backend module has ``NAME``, ``supports(src, dst, method) -> bool`` and ``generate(src, dst, method) -> Weights``.
Every conservative result, whichever backend made it, passes :func:`check_conservation` before it is used.
"""

from __future__ import annotations

from types import ModuleType

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid

BACKENDS = ("esmpy", "native", "cdo")  # the order "auto" tries them in
# method names as xESMF spells them; "nearest" is ours for nearest_s2d (each destination takes its nearest source)
METHODS = ("conservative", "conservative_normed", "conservative_2nd", "bilinear", "patch", "nearest_s2d",
           "nearest_d2s", "nearest")
ALIASES = {"nearest": "nearest_s2d"}
CONSERVATION_TOL = 1e-10  # relative error of the area integral above which a backend's weights are refused


def canonical_method(method: str) -> str:
    """The method a backend is asked for: ``nearest`` is ``nearest_s2d``, ``conservative_normed`` is
    ``conservative`` (the normalisation is applied to the weights afterwards)."""
    if method not in METHODS:
        raise RegridError(f"regrid method {method!r} unknown; expected one of {METHODS}")
    m = ALIASES.get(method, method)
    return "conservative" if m == "conservative_normed" else m


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name`` (esmpy, cdo, native), imported on demand."""
    if name == "esmpy":
        from tamrl_coupler.regrid.backends import esmpy_backend as mod
    elif name == "cdo":
        from tamrl_coupler.regrid.backends import cdo as mod
    elif name == "native":
        from tamrl_coupler.regrid.backends import native as mod
    else:
        raise RegridError(f"regrid backend {name!r} unknown; expected 'auto' or one of {BACKENDS}")
    return mod


def choose_backend(src: Grid, dst: Grid, method: str, backend: str = "auto") -> ModuleType:
    """The backend that will make the weights; ``auto`` tries esmpy, native, cdo in that order."""
    method = canonical_method(method)
    if backend != "auto":
        mod = get_backend(backend)
        if not mod.supports(src, dst, method):
            raise RegridError(f"backend {backend!r} cannot make {method} weights for {src.kind} grid {src.name!r} -> "
                              f"{dst.kind} grid {dst.name!r}" + ("" if _installed(mod) else f" ({_missing(mod)})"))
        return mod
    tried = []
    for name in BACKENDS:
        mod = get_backend(name)
        if mod.supports(src, dst, method):
            return mod
        tried.append(f"{name}: " + ("no such method/grid pair" if _installed(mod) else _missing(mod)))
    if method == "conservative":
        for g in (src, dst):
            g.require_bounds("conservative remapping")
    raise RegridError(f"no backend can make {method} weights for {src.kind} grid {src.name!r} -> {dst.kind} grid "
                      f"{dst.name!r} ({'; '.join(tried)})")


def generate_checked(mod: ModuleType, src: Grid, dst: Grid, method: str):
    """``mod.generate`` and, for conservative weights, :func:`check_conservation` of the result."""
    method = canonical_method(method)
    w = mod.generate(src, dst, method)
    if method.startswith("conservative"):
        check_conservation(w, src, dst, mod.NAME)
    return w


def geometric_areas(g: Grid, great_circle: bool):
    """The grid's cell areas (steradians) computed here from its corners: exact lat-lon areas for a regular grid with
    lat-lon edges, great-circle polygon areas otherwise."""
    from tamrl_coupler.regrid.grid import latlon_cell_areas
    from tamrl_coupler.regrid.overlap import CellPolygons, cell_areas

    if g.kind == "regular" and not great_circle and g.lat_bounds is not None:
        return latlon_cell_areas(g.lat_bounds, g.lon_bounds)
    return cell_areas(CellPolygons.from_corners(g.corner_lon, g.corner_lat, g.name))


def check_conservation(w, src: Grid, dst: Grid, backend: str, tol: float = CONSERVATION_TOL,
                       cell_tol: float = 1e-8) -> None:
    """Refuse conservative weights that do not conserve. Independently of the areas the backend wrote (CDO's are
    sums of its own overlaps, so a double count hides in them), with the cells' areas computed here under the
    backend's edge convention (lat-lon edges for two regular grids unless the backend uses great circles, as ESMF
    does; great circles otherwise):

    * no destination cell receives more than its area (``frac_b <= 1 + cell_tol``);
    * where the destination grid covers the sphere (and has no mask), the area integral of 1 on the active source
      cells is kept: ``sum(area_b * S_destarea @ 1) == sum(area_a)`` within ``tol`` (relative).

    An error names the grid pair, the backend and the error (e.g. CDO's ``gencon`` over-counting the edge of a
    regional curvilinear source by 10 %)."""
    import numpy as np

    what = f"{backend} backend, conservative weights {src.name!r} {src.shape} -> {dst.name!r} {dst.shape}"
    dest = w.to_normalization("destarea") if w.normalization == "fracarea" else w
    received = np.asarray(dest.matrix @ np.ones(src.size))  # fraction of each destination cell covered
    over = received - 1.0
    if over.size and over.max() > cell_tol:
        i = int(np.argmax(over))
        raise RegridError(f"{what}: refused, destination cell {i} (lat {dst.lat[i]:.3f}, lon {dst.lon[i]:.3f}) "
                          f"receives {received[i]:.12f} of its area (more than all of it: overlaps counted twice)")
    if dst.mask is not None or dst.kind == "points":
        return
    both_regular = src.kind == "regular" and dst.kind == "regular"
    conventions = [True] if not both_regular or backend == "esmpy" or "great-circle" in str(w.source) else (
        [False] if backend == "native" else [False, True])
    errors = []
    for great_circle in conventions:
        area_b = geometric_areas(dst, great_circle)
        if abs(float(np.sum(area_b)) / (4 * np.pi) - 1.0) > 1e-9:
            return  # a regional destination: no global integral to compare
        area_a = geometric_areas(src, great_circle)
        active = (src.mask != 0) if src.mask is not None else np.ones(src.size, bool)
        total = float(np.sum(area_a[active]))
        errors.append(abs(float(np.sum(area_b * received)) - total) / total)
    err = min(errors)
    if err > tol:
        raise RegridError(f"{what}: refused, the area integral is off by {err:.3e} (relative; {tol:g} allowed): a "
                          "global destination must receive exactly the area of the active source cells "
                          "(cell areas from the grids' corners)")


def _installed(mod: ModuleType) -> bool:
    return getattr(mod, "available", lambda: True)()


def _missing(mod: ModuleType) -> str:
    if mod.NAME == "esmpy":
        return mod.why_not()
    return {"cdo": "cdo not on PATH"}.get(mod.NAME, "unavailable")
