"""The import side of a coupling step: the host arrays registered by name, validated on land cells and regridded
to this rank's model cells into preallocated rows, plus the imports derived from them (physics/drivers.py).

Host memory is never modified: land values are copied into the regrid buffers and validated there. States are
regridded bilinearly (conservatively where a model cell's bilinear stencil has no land host cell), fluxes
conservatively and classes by largest overlap, each land-mask normalised; the regrid kind of every field comes from
the vocabulary. Buffers are made once (at the first step after a registration), so a step allocates nothing.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.component.clock import StepInfo
from tamrl_coupler.component.geometry import Geometry
from tamrl_coupler.component.plausibility import Plausibility
from tamrl_coupler.component.rows import check_one_name
from tamrl_coupler.component.validation import ForcingValidator
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.drivers import ImportDerivations
from tamrl_coupler.vocabulary import Regrid, Role


class Imports:
    """Registered host fields -> validated model-cell rows (``fields``) every step; see the module docstring."""

    def __init__(self, geometry: Geometry, fill_policy: str = "error", check_range: bool = True,
                 check_plausibility: bool = True):
        self.geo = geometry
        self.fill_policy, self.check_range = fill_policy, check_range
        self.plausibility = Plausibility(geometry.locator, geometry.host_active) if check_plausibility else None
        self.host_rows: dict[str, np.ndarray] = {}  # import name -> this rank's validated host-cell row
        self.arrays: dict[str, np.ndarray] = {}
        self.given: dict[str, str] = {}  # import -> the name the host registered it under
        self.validator: ForcingValidator | None = None
        self._previous: ForcingValidator | None = None  # the validator before a new registration (its memory)
        self.fields: dict[str, np.ndarray] = {}  # import name -> this rank's model-cell row, after each step
        self._pending_last_valid: dict[str, np.ndarray] = {}

    @staticmethod
    def accepted_names() -> list[str]:
        """Import field names accepted by :meth:`register`: short names, aliases and CF standard names."""
        return vocabulary.accepted_names(Role.IMPORT)

    @staticmethod
    def field_name(name: str) -> str:
        """The import ``name`` stands for (a name, an alias or a CF standard name)."""
        return vocabulary.canonical_name(Role.IMPORT, name)

    def register(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` by reference; its values are read at every step. The same name again replaces the array;
        the same quantity under another name is an error naming both (one of the arrays would be ignored)."""
        short = self.field_name(name)
        check_one_name("import", name, short, self.given)
        self.arrays[short] = self.geo.host_array(short, array)
        self.given[short] = name
        if self.validator is not None:  # buffers are made again at the next step; the counts and memory carry over
            self._previous, self.validator = self.validator, None

    def hold_forcing(self, seconds: float) -> None:
        """The host holds forcing records of up to ``seconds`` over shorter coupling steps (the offline driver): the
        shortwave plausibility check allows for light from anywhere in such a record."""
        if self.plausibility is not None:
            self.plausibility.pad = max(self.plausibility.pad, float(seconds))

    @property
    def ready(self) -> bool:
        return self.validator is not None

    def setup(self) -> None:
        """Buffers, validator and derivations for the registered fields (once, before the first step)."""
        missing = vocabulary.missing_imports(set(self.arrays))
        if missing:
            raise InputError(f"rank {self.geo.rank}: required import field(s) not registered: {'; '.join(missing)} "
                             f"(registered: {sorted(self.arrays)})")
        geo, names = self.geo, list(self.arrays)
        kinds = {n: vocabulary.IMPORTS[n].regrid for n in names}
        self.state_names = [n for n in names if kinds[n] is Regrid.STATE]
        self.flux_names = [n for n in names if kinds[n] is Regrid.FLUX]
        self.class_names = [n for n in names if kinds[n] is Regrid.CLASS]
        n_f, n_s, n_h, n_m = len(self.flux_names), len(self.state_names), geo.cells.size, geo.n_model
        # States also need their conservative values where no land host cell is in a model cell's bilinear
        # stencil: they ride in the flux fields' conservative application (one exchange, a constant field count,
        # so the regridder's buffers are reused), as rows after the fluxes.
        self.fallback = geo.any_fallback and n_s > 0
        n_cons = n_f + (n_s if self.fallback else 0)
        self._buf_conservative = np.zeros((n_cons, n_h))
        self.buf_flux = self._buf_conservative[:n_f]
        self.buf_state = self._buf_conservative[n_f:] if self.fallback else np.zeros((n_s, n_h))
        self.buf_class = np.zeros((len(self.class_names), n_h))
        # the same fields on this rank's model cells, regridded into place every step (no per-step allocation)
        self._model_conservative = np.zeros((n_cons, n_m))
        self.model_flux = self._model_conservative[:n_f]
        self._state_fallback = self._model_conservative[n_f:]  # conservative values of the states
        self.model_state = np.zeros((n_s, n_m))
        self.model_class = np.zeros((len(self.class_names), n_m))
        self._fallback_where = np.broadcast_to(geo.use_flux_for_state[None, :], self.model_state.shape)
        self.fields = {}
        for group, rows in ((self.state_names, self.model_state), (self.flux_names, self.model_flux),
                            (self.class_names, self.model_class)):
            self.fields.update(zip(group, rows, strict=True))
        self.derivations = ImportDerivations(self.fields, n_m)
        self.host_rows = {n: row for buf, group in self._groups() for row, n in zip(buf, group, strict=True)}
        prev, self._previous = self._previous, None
        self.validator = ForcingValidator(names, geo.host_active, geo.locator, self.fill_policy, self.check_range)
        if prev is not None:
            self.validator.substitutions.update({k: v for k, v in prev.substitutions.items() if k in names})
            if prev.policy == self.validator.policy == "persist":
                self.validator.last_valid.update({k: v for k, v in prev.last_valid.items() if k in names})
        for k, v in self._pending_last_valid.items():
            if k in self.validator.last_valid:
                self.validator.last_valid[k][:] = v
        self._pending_last_valid = {}

    def step(self, label: str, info: StepInfo | None = None, first_step: bool = False) -> dict[str, np.ndarray]:
        """Copy and validate this step's imports into the buffers, each against its range, then together against
        the sun and the day (component/plausibility.py, with ``info``); nothing else changes: :meth:`commit` once
        the step passed on every rank. Returns ``fields``."""
        active = self.geo.host_active
        for buf, names in self._groups():
            for row, n in zip(buf, names, strict=True):
                np.copyto(row, self.arrays[n], where=active)
                self.validator.check(n, row, label)
        if self.plausibility is not None and info is not None:
            self.plausibility.check(self.host_rows, info, label, first_step)
        return self.fields

    def _groups(self) -> tuple[tuple[np.ndarray, list[str]], ...]:
        return ((self.buf_state, self.state_names), (self.buf_flux, self.flux_names),
                (self.buf_class, self.class_names))

    def commit(self, label: str, info: StepInfo | None = None) -> None:
        """The step's imports passed on every rank: remember them (fill policy 'persist', the day's temperature
        extremes) and count substitutions."""
        self.validator.commit(self.host_rows, label)
        if self.plausibility is not None and info is not None:
            self.plausibility.commit(self.host_rows, info)

    def discard(self) -> None:
        """The step failed on some rank: forget what :meth:`step` counted."""
        if self.validator is not None:
            self.validator.discard()

    @property
    def substitutions(self) -> dict[str, int]:
        """Values replaced by the fill policy so far on this rank, per import field (those with any)."""
        validator = self.validator or self._previous
        return {k: v for k, v in validator.substitutions.items() if v} if validator is not None else {}

    def regrid(self) -> dict[str, np.ndarray]:
        """Host -> model, into the rows behind ``fields``: fluxes conservative, states bilinear (conservative where
        the bilinear stencil has no land), classes by largest overlap; land-mask normalised. Then the derived
        imports."""
        geo = self.geo
        if self._buf_conservative.shape[0]:
            geo.rg_flux(self._buf_conservative, out=self._model_conservative)
            self._model_conservative *= geo.inv_den_flux
        if self.state_names:
            geo.rg_state(self.buf_state, out=self.model_state)
            self.model_state *= geo.inv_den_state
            if self.fallback:
                np.copyto(self.model_state, self._state_fallback, where=self._fallback_where)
        if self.class_names:
            geo.rg_class(self.buf_class, out=self.model_class)
        self.derivations.derive()
        return self.fields

    # restart ----------------------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per host cell: the last valid value of every field (fill policy 'persist' only)."""
        validator = self.validator or self._previous
        if validator is None or validator.policy != "persist":
            return {}
        return {f"last_valid_{k}": v for k, v in validator.last_valid.items()}

    def load_state(self, host_arrays: dict[str, np.ndarray]) -> None:
        """``last_valid_<import>`` arrays of this rank's host cells (applied when the buffers are made)."""
        self._pending_last_valid = {vocabulary.canonical_name(Role.IMPORT, k[len("last_valid_"):]): v
                                    for k, v in host_arrays.items() if k.startswith("last_valid_")}
