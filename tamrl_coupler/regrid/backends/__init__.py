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


def check_conservation(w, src: Grid, dst: Grid, backend: str, tol: float = CONSERVATION_TOL) -> None:
    """Refuse conservative weights whose area integral is off, with the weights' own areas (the ones they were made
    with): no destination cell may receive more than its area (``frac_b`` <= 1), no source cell may give more than
    its area (``frac_a`` <= 1), and where the destination grid covers the whole sphere every active source cell must
    be given away completely, so that ``sum(area_b * S @ 1) == sum(area_a)`` over the active source cells. An error
    names the grid pair, the backend and the error (e.g. CDO's ``gencon`` over-counting a regional curvilinear
    source's edge)."""
    import numpy as np

    if w.area_a is None or w.area_b is None:
        raise RegridError(f"{backend} backend: conservative weights {src.name!r} -> {dst.name!r} carry no cell areas; "
                          "their conservation cannot be checked")
    dest = w.to_normalization("destarea") if w.normalization == "fracarea" else w
    active_a = (src.mask != 0) if src.mask is not None else np.ones(src.size, bool)
    given = np.asarray(dest.matrix.T @ dest.area_b)  # area each source cell gives away
    received = np.asarray(dest.matrix @ np.ones(src.size))  # fraction of each destination cell covered
    what = f"{backend} backend, conservative weights {src.name!r} {src.shape} -> {dst.name!r} {dst.shape}"
    over_b = received - 1.0
    if over_b.size and over_b.max() > tol:
        i = int(np.argmax(over_b))
        raise RegridError(f"{what}: refused, destination cell {i} (lat {dst.lat[i]:.3f}, lon {dst.lon[i]:.3f}) "
                          f"receives {received[i]:.12f} of its area (more than all of it: overlaps counted twice)")
    ratio_a = given / np.where(w.area_a > 0, w.area_a, 1.0)
    if ratio_a.size and (ratio_a - 1.0).max() > tol:
        i = int(np.argmax(ratio_a))
        raise RegridError(f"{what}: refused, source cell {i} (lat {src.lat[i]:.3f}, lon {src.lon[i]:.3f}) gives "
                          f"away {ratio_a[i]:.12f} of its area (more than all of it: overlaps counted twice)")
    global_dst = abs(float(np.sum(w.area_b)) / (4 * np.pi) - 1.0) < 1e-6 and dst.mask is None
    if global_dst:
        total = float(np.sum(w.area_a[active_a]))
        err = abs(float(np.sum(given[active_a])) - total) / total
        if err > tol:
            raise RegridError(f"{what}: refused, the area integral is off by {err:.3e} (relative; {tol:g} allowed): "
                              f"the global destination receives {float(np.sum(given[active_a])):.12e} sr of "
                              f"{total:.12e} sr of active source cells")


def _installed(mod: ModuleType) -> bool:
    return getattr(mod, "available", lambda: True)()


def _missing(mod: ModuleType) -> str:
    if mod.NAME == "esmpy":
        return mod.why_not()
    return {"cdo": "cdo not on PATH"}.get(mod.NAME, "unavailable")
