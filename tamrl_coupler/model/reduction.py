"""Member outputs -> the ensemble's fluxes: the mean (the flux), the spread (member standard deviation, or the
calibrated predictive standard deviation when the checkpoint carries a spread calibration), and NEE derived from
the mean GPP and Reco exactly.

Two forms of one arithmetic: the estimate rows the kernels reduce into (float64 (R, n), the component's period
estimate; the calibration bound into programs, :meth:`MemberReduction.bind_calibrate`) and :class:`Fluxes` from
member outputs at once (:meth:`MemberReduction.from_members`, the whole-record evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from tamrl_coupler.kernels.ops import Program
from tamrl_coupler.model.calibration import SpreadCalibration
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components

# rows of the period estimate the kernels write (gC m-2 d-1); a sixth, nee_free, for "free" variants
ESTIMATE_FIELDS = ("gpp", "reco", "gpp_std", "reco_std", "nee_std")


@dataclass
class Fluxes:
    """Ensemble-mean fluxes and spreads, float64, gC m-2 d-1, shape (n_cells[, T]). The spreads are the calibrated
    predictive standard deviations of the observed flux when the checkpoint carries a spread calibration, else the
    member standard deviation."""

    gpp: torch.Tensor
    reco: torch.Tensor
    nee: torch.Tensor
    gpp_std: torch.Tensor
    reco_std: torch.Tensor
    nee_std: torch.Tensor
    nee_free: torch.Tensor | None = None  # only for "free" variants: the unconstrained NEE head (ensemble mean)

    def to_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.__dict__.items() if v is not None}


def flux_fields(n_outputs: int) -> list[str]:
    """The :class:`Fluxes` fields an ensemble of members with ``n_outputs`` heads fills, in their order."""
    return ["gpp", "reco", "nee", "gpp_std", "reco_std", "nee_std"] + (["nee_free"] if n_outputs > 2 else [])


class MemberReduction:
    """The reduction of one ensemble: its sign convention, its spread calibration (None: member spread) and the
    driver column of the land-cover class the calibration uses (None: the class is unknown)."""

    def __init__(self, convention: SignConvention, calibration: SpreadCalibration | None, igbp_col: int | None,
                 n_members: int):
        self.convention, self.calibration, self.igbp_col, self.n_members = convention, calibration, igbp_col, n_members

    @property
    def spread_meaning(self) -> str:
        """What the *_std / *_spread values are, for file metadata."""
        if self.calibration is None:
            return f"ensemble spread: standard deviation over {self.n_members} members"
        return ("calibrated predictive standard deviation of the observed flux at a site the model did not see "
                "(error model fitted on cross-validation held-out sites; mean +- 1.645 sd is a 90 % interval)")

    def bind_calibrate(self, x: torch.Tensor, est: torch.Tensor, bufs) -> Program:
        """The spread rows replaced by the calibrated predictive standard deviations of the mean GPP and Reco and
        the land-cover class (the igbp driver; unknown without it), in place: the same arithmetic as
        :meth:`SpreadCalibration.sigma_torch`, whichever kernel made the means."""
        if self.calibration is None:
            return []
        n = est.shape[1]
        igbp = bufs.get("cal_igbp", (n,), torch.float64)
        prog: Program = ([partial(igbp.copy_, x[:, self.igbp_col])] if self.igbp_col is not None
                         else [partial(igbp.fill_, float("nan"))])
        return prog + self.calibration.bind_sigma(est[0], est[1], igbp, est[2:5], bufs)

    def fluxes(self, est: torch.Tensor) -> Fluxes:
        """Estimate rows -> Fluxes; NEE from the mean components, exactly."""
        return Fluxes(gpp=est[0], reco=est[1], nee=nee_from_components(est[0], est[1], self.convention),
                      gpp_std=est[2], reco_std=est[3], nee_std=est[4],
                      nee_free=est[5] if est.shape[0] > 5 else None)

    def from_members(self, out: torch.Tensor, x: torch.Tensor, device: torch.device) -> Fluxes:
        """Member outputs (n, M, n_out) and the drivers (n, D) they were made from -> the ensemble's fluxes (mean,
        NEE derived exactly, spreads calibrated when the checkpoint carries a calibration): what a step's kernels
        reduce to, equal to float32 rounding."""
        out = out.to(torch.float64)
        gpp_m, reco_m = out[:, :, 0], out[:, :, 1]
        gpp, reco = gpp_m.mean(dim=1), reco_m.mean(dim=1)
        fluxes = Fluxes(gpp=gpp, reco=reco, nee=nee_from_components(gpp, reco, self.convention),
                        gpp_std=gpp_m.std(dim=1, unbiased=False), reco_std=reco_m.std(dim=1, unbiased=False),
                        nee_std=nee_from_components(gpp_m, reco_m, self.convention).std(dim=1, unbiased=False),
                        nee_free=out[:, :, 2].mean(dim=1) if out.shape[-1] > 2 else None)
        if self.calibration is not None:
            x = torch.as_tensor(x)
            igbp = (x[:, self.igbp_col].to(device=device, dtype=torch.float64) if self.igbp_col is not None
                    else torch.full_like(gpp, float("nan")))
            sig = self.calibration.sigma_torch(gpp, reco, igbp)
            fluxes.gpp_std, fluxes.reco_std, fluxes.nee_std = sig["gpp"], sig["reco"], sig["nee"]
        return fluxes
