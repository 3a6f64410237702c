"""Weight generators. ``auto`` picks esmpy when it imports, else cdo when on PATH, else the native generator.

Each backend module has ``NAME``, ``supports(src, dst, method) -> bool`` and ``generate(src, dst, method) -> Weights``.
"""

from __future__ import annotations

from types import ModuleType

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid.grid import Grid

BACKENDS = ("esmpy", "cdo", "native")
METHODS = ("conservative", "conservative_2nd", "bilinear", "patch", "nearest")


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
    """The backend that will make the weights; ``auto`` tries esmpy, cdo, native in that order."""
    if method not in METHODS:
        raise RegridError(f"regrid method {method!r} unknown; expected one of {METHODS}")
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


def _installed(mod: ModuleType) -> bool:
    return getattr(mod, "available", lambda: True)()


def _missing(mod: ModuleType) -> str:
    if mod.NAME == "esmpy":
        return mod.why_not()
    return {"cdo": "cdo not on PATH"}.get(mod.NAME, "unavailable")
