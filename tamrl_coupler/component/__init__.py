"""The coupling component (Component -> bridge contract in docs/ARCHITECTURE.md).

Heavy imports (torch, the model, the regridder) happen when a component is built, not at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tamrl_coupler.component.component import CouplingComponent
    from tamrl_coupler.component.geometry import HostCells


def __getattr__(name: str) -> Any:
    if name == "CouplingComponent":
        from tamrl_coupler.component.component import CouplingComponent

        return CouplingComponent
    if name == "HostCells":
        from tamrl_coupler.component.geometry import HostCells

        return HostCells
    raise AttributeError(name)


__all__ = ["CouplingComponent", "HostCells"]
