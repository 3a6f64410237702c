"""Member outputs -> the ensemble's fluxes: the mean (the flux), the spread (member standard deviation, or the
calibrated predictive standard deviation where the checkpoint carries an error model of its spreads: the global
``model/calibration.py`` or the day + site ``model/site_error.py``), and the derived targets (NEE) from the means of
their components exactly.

Two forms of one arithmetic: the estimate rows the kernels reduce into (float64 (R, n), the component's period
estimate; the calibration bound into programs, :meth:`MemberReduction.bind_calibrate`) and :class:`Fluxes` from
member outputs at once (:meth:`MemberReduction.from_members`, the whole-record evaluation). Every row and field is
named by the ensemble's :class:`~tamrl_coupler.model.outputs.Outputs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import torch

from tamrl_coupler.kernels.ops import Program
from tamrl_coupler.model.calibration import SpreadCalibration, calibrated_meaning
from tamrl_coupler.model.outputs import Outputs, free_name, spread_name
from tamrl_coupler.model.site_error import SiteErrorModel
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components


class Fluxes:
    """Ensemble-mean fluxes and spreads by name (``fluxes.gpp``, ``fluxes["gpp_std"]``), float64, in each target's
    unit (gC m-2 d-1 for the carbon fluxes), shape (n_cells[, T]); the fields are the ensemble's
    ``Outputs.flux_fields`` (gpp, reco, nee, gpp_std, reco_std, nee_std; nee_free in "free" variants)."""

    def __init__(self, **fields: torch.Tensor | None):
        self._fields = {k: v for k, v in fields.items() if v is not None}

    def __getattr__(self, name: str) -> torch.Tensor:
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"the ensemble's fluxes have no field {name!r}; they have {list(fields)}")

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self._fields.items()}


class MemberReduction:
    """The reduction of one ensemble: its output layout, sign convention, spread calibration (None: member spread)
    and the driver column of the land-cover class the calibration uses (None: the class is unknown)."""

    def __init__(self, outputs: Outputs, convention: SignConvention,
                 calibration: SpreadCalibration | SiteErrorModel | None, igbp_col: int | None, n_members: int,
                 period: str = "daily"):
        self.outputs, self.convention, self.igbp_col, self.n_members = outputs, convention, igbp_col, n_members
        self.calibration, self.period = calibration, period

    @property
    def calibrated(self) -> tuple[str, ...]:
        """The targets whose spread the calibration replaces."""
        cal = self.calibration
        return () if cal is None else tuple(t for t in self.outputs.spread_targets if t in cal.fluxes)

    @property
    def spread_meaning(self) -> str:
        """What the *_std / *_spread values are, for file metadata."""
        member = f"ensemble spread: standard deviation over {self.n_members} members"
        calibrated = self.calibrated
        if not calibrated:
            return member
        text = calibrated_meaning(self.period, isinstance(self.calibration, SiteErrorModel))
        rest = [t for t in self.outputs.spread_targets if t not in calibrated]
        return text if not rest else f"{text} for {', '.join(calibrated)}; {member} for {', '.join(rest)}"

    def _row(self, name: str) -> int:
        return self.outputs.all_rows.index(name)

    def bind_calibrate(self, x: torch.Tensor, est: torch.Tensor, bufs, z: torch.Tensor | None = None) -> Program:
        """The spread rows of the calibrated targets replaced by the calibrated predictive standard deviations of
        the mean GPP and Reco and the land-cover class (the igbp driver; unknown without it) -- and, for a site
        error model, of the members' spreads (the rows' values on entry) and the embeddings ``z`` (n, M, E) --, in
        place: the same arithmetic as the error model's ``sigma_torch``, whichever kernel made the means."""
        if not self.calibrated:
            return []
        n = est.shape[1]
        igbp = bufs.get("cal_igbp", (n,), torch.float64)
        prog: Program = ([partial(igbp.copy_, x[:, self.igbp_col])] if self.igbp_col is not None
                         else [partial(igbp.fill_, float("nan"))])
        rows = {t: est[self._row(spread_name(t))] for t in self.calibration.fluxes if t in self.calibrated}
        if isinstance(self.calibration, SiteErrorModel):
            return prog + self.calibration.bind_sigma(est[self._row("gpp")], est[self._row("reco")], igbp, rows, z,
                                                      bufs)
        return prog + self.calibration.bind_sigma(est[self._row("gpp")], est[self._row("reco")], igbp, rows, bufs)

    def _derived(self, means: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The derived targets' means from their components' means (the balance, exactly)."""
        return {t: nee_from_components(means[a], means[b], self.convention) for t, a, b in self.outputs.derived}

    def fluxes(self, est: torch.Tensor) -> Fluxes:
        """Estimate rows (:attr:`Outputs.all_rows`) -> Fluxes; derived targets from the mean components, exactly."""
        out = self.outputs
        means = {t: est[self._row(t)] for t in out.predicted}
        means.update(self._derived(means))
        fields = {**means, **{spread_name(t): est[self._row(spread_name(t))] for t in out.targets}}
        fields.update({free_name(t): est[self._row(free_name(t))] for t in out.free if est.shape[0] > len(out.rows)})
        return Fluxes(**{k: fields[k] for k in out.flux_fields if k in fields})

    def from_members(self, out: torch.Tensor, x: torch.Tensor, device: torch.device, z: torch.Tensor | None = None
                     ) -> Fluxes:
        """Member outputs (n, M, n_out) and the drivers (n, D) they were made from -> the ensemble's fluxes (mean,
        derived targets exactly, spreads calibrated where the checkpoint carries a calibration; a site error model
        needs the embeddings ``z`` (n, M, E)): what a step's kernels reduce to, equal to float32 rounding."""
        layout = self.outputs
        out = out.to(torch.float64)
        member = {t: out[:, :, layout.head(t)] for t in layout.predicted}
        means = {t: m.mean(dim=1) for t, m in member.items()}
        spreads = {spread_name(t): m.std(dim=1, unbiased=False) for t, m in member.items()}
        means.update(self._derived(means))
        spreads.update({spread_name(t): nee_from_components(member[a], member[b], self.convention).std(
            dim=1, unbiased=False) for t, a, b in layout.derived})
        free = {free_name(t): out[:, :, layout.head(free_name(t))].mean(dim=1) for t in layout.free}
        if self.calibrated:
            x = torch.as_tensor(x)
            igbp = (x[:, self.igbp_col].to(device=device, dtype=torch.float64) if self.igbp_col is not None
                    else torch.full_like(means["gpp"], float("nan")))
            if isinstance(self.calibration, SiteErrorModel):
                sd = {t: spreads[spread_name(t)] for t in self.calibration.fluxes}
                sig = self.calibration.sigma_torch(means["gpp"], means["reco"], sd, z.to(device), igbp)
            else:
                sig = self.calibration.sigma_torch(means["gpp"], means["reco"], igbp)
            spreads.update({spread_name(t): sig[t] for t in self.calibrated})
        fields = {**means, **spreads, **free}
        return Fluxes(**{k: fields[k] for k in layout.flux_fields})
