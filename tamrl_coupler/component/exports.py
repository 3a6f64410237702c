"""The export side of a coupling step: the step's fluxes from the model cells to this rank's host cells
(conservative, exact global totals), converted to the configured unit and written into the host arrays registered
by name, with NEE recomputed from the exported GPP and Reco on every host cell (the balance identity exact in the
values the host receives)."""

from __future__ import annotations

import math

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.rows import NamedRows
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components
from tamrl_coupler.physics.units import FluxUnit
from tamrl_coupler.vocabulary import Role


class Exports:
    """Registered host arrays, written every step from the model cells' named rows; see the module docstring."""

    def __init__(self, geometry: Geometry, unit: FluxUnit, convention: SignConvention):
        self.geo, self.unit, self.convention = geometry, unit, convention
        n = geometry.cells.size
        self.arrays: dict[str, np.ndarray] = {}
        self.host_rows = NamedRows((q.name for q in vocabulary.carried_exports()), n)  # gC m-2 d-1, host cells
        self._scratch: dict[str, np.ndarray] = {}

    @staticmethod
    def names() -> list[str]:
        """The export fields, in the vocabulary's order."""
        return list(vocabulary.EXPORTS)

    def register(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` by reference; every step writes this field's values into it."""
        short = vocabulary.canonical_name(Role.EXPORT, name)
        array = self.geo.host_array(short, array)
        self._check_writable(short, array)
        self.arrays[short] = array

    def _check_writable(self, name: str, array: np.ndarray) -> None:
        if not array.flags.writeable:
            raise InputError(f"export field '{name}' on rank {self.geo.rank}: the registered array is read-only; the "
                             f"component writes the step's fluxes into it")

    def check_arrays(self) -> None:
        """Before a step changes anything: every registered export can still be written (a host may have made
        one read-only since), so that the step cannot fail after the state has advanced."""
        for name, array in self.arrays.items():
            self._check_writable(name, array)

    def regrid(self, model_rows: NamedRows) -> None:
        """Model -> host (conservative, exact global totals). A host cell that no model cell overlaps (an ocean
        cell: Geometry refuses land cells without one) gets 0; no other value is ever replaced."""
        h = self.host_rows.array
        self.geo.rg_out(model_rows.array, out=h)
        np.copyto(h, 0.0, where=self.geo.host_uncovered[None, :])

    def write(self) -> None:
        """Unit conversion into the registered arrays; NEE (and any export the host derives) from GPP and Reco."""
        f, h, ex = self.unit.factor, self.host_rows, self.arrays
        gpp = ex["gpp"] if "gpp" in ex else self._scratch_row("gpp")
        reco = ex["reco"] if "reco" in ex else self._scratch_row("reco")
        np.multiply(h["gpp"], f, out=gpp)
        np.multiply(h["reco"], f, out=reco)
        if "nee" in ex:
            nee_from_components(gpp, reco, self.convention, out=ex["nee"])
        for name, array in ex.items():
            if name not in ("gpp", "reco") and name in h:
                np.multiply(h[name], f, out=array)

    def _scratch_row(self, name: str) -> np.ndarray:
        if name not in self._scratch:
            self._scratch[name] = np.zeros(self.geo.cells.size)
        return self._scratch[name]

    def global_totals(self, model_rows: NamedRows) -> dict[str, tuple[float, float]]:
        """Last step's global totals (gC d-1) of gpp, reco, nee: (model side, host side), exactly summed (fsum).
        Collective."""
        geo = self.geo
        m_w = geo.model_area * geo.model_landfrac
        h_w = geo.cells.area * geo.cells.land_fraction
        sm, hg = model_rows, self.host_rows
        loc = {"gpp": (sm["gpp"] * m_w, hg["gpp"] * h_w), "reco": (sm["reco"] * m_w, hg["reco"] * h_w),
               "nee": (nee_from_components(sm["gpp"], sm["reco"], self.convention) * m_w,
                       nee_from_components(hg["gpp"], hg["reco"], self.convention) * h_w)}
        out = {}
        for k, (a, b) in loc.items():
            pa = geo.comm.gather(a, root=0)
            pb = geo.comm.gather(b, root=0)
            if geo.rank == 0:
                out[k] = (math.fsum(np.concatenate(pa)), math.fsum(np.concatenate(pb)))
        return geo.comm.bcast(out, root=0)
