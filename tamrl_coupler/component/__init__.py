"""The coupling component (Component -> bridge contract in docs/ARCHITECTURE.md).

Heavy imports (torch, the model, the regridder) happen when a component is built, not at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tamrl_coupler.component.component import CouplingComponent, HostCells


def __getattr__(name: str):
    if name in ("CouplingComponent", "HostCells"):
        from tamrl_coupler.component import component

        return getattr(component, name)
    raise AttributeError(name)


__all__ = ["CouplingComponent", "HostCells"]
