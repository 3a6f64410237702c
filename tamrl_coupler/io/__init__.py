"""The product's own files: CF forcing (and the FluxVal sites as forcing), the host grid, the flux file (writer and
reader, and ``open_fluxes``: the same file as xarray), the inversion prior file and restart files, all over
:mod:`tamrl_coupler.ncfiles`."""

from __future__ import annotations

from typing import Any

__all__ = ["open_fluxes"]


def __getattr__(name: str) -> Any:
    """``tamrl_coupler.io.open_fluxes`` without importing the flux-file modules for every user of ``io``."""
    if name == "open_fluxes":
        from tamrl_coupler.io.fluxes_xarray import open_fluxes

        return open_fluxes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
