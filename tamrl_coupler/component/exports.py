"""The export side of a coupling step: the step's fluxes from the model cells to this rank's host cells
(conservative, exact global totals), converted to what the host receives and written into the host arrays
registered by name, with the exports the host cells derive (NEE from the exported GPP and Reco, the balance
identity exact in the values the host receives) computed there.

Driven by the vocabulary: an export either carries an ensemble output (its ``carries``: regridded, converted by
``physics/units.py`` ``export_conversion``) or is derived on the host from other exports (its ``derived_from``,
made by ``physics/carbon.py`` EXPORT_DERIVATIONS). An export neither carried by this ensemble nor derivable is
refused at registration, never silently left unwritten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.rows import NamedRows, check_one_name
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import EXPORT_DERIVATIONS, SignConvention, nee_from_components
from tamrl_coupler.physics.units import FluxUnit, ScalarConversion, export_conversion
from tamrl_coupler.vocabulary import Role


def available_exports(outputs: Iterable[str]) -> tuple[str, ...]:
    """The exports, in the vocabulary's order, that an ensemble with estimate rows ``outputs`` can feed: those
    carrying one of them, and those derived from such exports."""
    have = set(outputs)
    names: list[str] = []
    for q in vocabulary.EXPORTS.values():
        if (q.carries in have if q.carries is not None
                else q.derived_from and all(d in names for d in q.derived_from)):
            names.append(q.name)
    return tuple(names)


class Exports:
    """Registered host arrays, written every step from the model cells' named rows; see the module docstring.

    ``carried``: the exports this component's ensemble feeds, in order (the rows regridded every step)."""

    def __init__(self, geometry: Geometry, unit: FluxUnit, convention: SignConvention, carried: Iterable[str]):
        self.geo, self.unit, self.convention = geometry, unit, convention
        n = geometry.cells.size
        self.arrays: dict[str, np.ndarray] = {}
        self.given: dict[str, str] = {}  # export -> the name the host registered it under
        self.host_rows = NamedRows(carried, n)  # in the targets' units (gC m-2 d-1 ...), host cells
        self._available = available_exports(vocabulary.EXPORTS[c].carries for c in carried)
        self._conversion: dict[str, ScalarConversion] = {c: export_conversion(c, unit) for c in carried}
        self._scratch: dict[str, np.ndarray] = {}

    def names(self) -> list[str]:
        """The export fields this component writes, in the vocabulary's order."""
        return list(self._available)

    def field_name(self, name: str) -> str:
        """The export ``name`` stands for (a name, an alias or a CF standard name), one this component writes."""
        short = vocabulary.canonical_name(Role.EXPORT, name)
        q = vocabulary.EXPORTS[short]
        if q.carries is None and short not in EXPORT_DERIVATIONS:
            raise InputError(f"export field '{short}' is derived on the host from {list(q.derived_from)}, but no "
                             f"derivation of it is known (physics/carbon.py EXPORT_DERIVATIONS has "
                             f"{sorted(EXPORT_DERIVATIONS)}): it would never be written")
        if short not in self._available:
            raise InputError(f"export field '{short}' carries {q.carries or list(q.derived_from)!r}, which this "
                             f"ensemble does not predict; it can export {list(self._available)}")
        return short

    def register(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` by reference; every step writes this field's values into it. The same name again
        replaces the array; the same quantity under another name is an error naming both (one array would never
        be written)."""
        short = self.field_name(name)
        check_one_name("export", name, short, self.given)
        array = self.geo.host_array(short, array)
        self._check_writable(short, array)
        self.arrays[short] = array
        self.given[short] = name

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

    def _converted(self, name: str) -> np.ndarray:
        """Carried export ``name`` in the host's unit: into its registered array, or a scratch row when only a
        derived export needs it."""
        out = self.arrays[name] if name in self.arrays else self._scratch_row(name)
        conv = self._conversion[name]
        np.multiply(self.host_rows[name], conv.scale, out=out)
        if conv.offset:
            out += conv.offset
        return out

    def write(self) -> None:
        """Unit conversion into the registered arrays; the derived exports (NEE) from the converted ones."""
        needed = {d for n in self.arrays for d in vocabulary.EXPORTS[n].derived_from}
        values = {n: self._converted(n) for n in self.host_rows if n in self.arrays or n in needed}
        for name, array in self.arrays.items():
            q = vocabulary.EXPORTS[name]
            if q.carries is None:
                EXPORT_DERIVATIONS[name](*(values[d] for d in q.derived_from), self.convention, out=array)

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
