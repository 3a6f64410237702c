"""Components used only by the bridge benchmark (bench/ is put on PYTHONPATH by bench/bridge_step.py).

``NullComponent`` does nothing in ``run_step``: timing it through the bridge measures the bridge's own cost per
coupling step (C -> GIL -> Python handle table -> method call -> status back), the number a host pays on top
of the component's real work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMPORTS = ["tas", "huss", "ps", "rsds", "pr"]
EXPORTS = ["gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread"]


class NullComponent:
    """The Component contract with an empty step."""

    import_names = IMPORTS
    export_names = EXPORTS

    def __init__(self, config: Any, comm: Any, cells: Any, restart: str | None = None):
        self.fields: dict[str, np.ndarray] = {}

    def register_import(self, name: str, array: np.ndarray) -> None:
        self.fields[name] = array

    def register_export(self, name: str, array: np.ndarray) -> None:
        self.fields[name] = array

    def run_step(self, time_seconds: float, dt_seconds: float) -> None:
        pass

    def write_restart(self, path: str) -> None:
        pass

    def finalise(self) -> None:
        pass
