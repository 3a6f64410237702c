"""Calibrated predictive spread: the standard deviation of the *observed* flux at a site the model never saw.

Why not the ensemble spread: members trained on the same sites disagree far less than any of them errs at a new
site (5-7x too narrow in cross-validation), because the error is dominated by each site's offset, which no member
sees. So the spread is a model of the error itself, fitted on cross-validation out-of-fold errors and stored in
the checkpoint header:

    log sigma_v = a_v + b_v log1p(GPP) + c_v log1p(Reco) + d_v[land-cover class]        (v = gpp, reco, nee)

with GPP, Reco the ensemble-mean prediction, the class offset 0 for an unknown class, and the parameters chosen by
maximising the Gaussian likelihood of the out-of-fold errors (a ridge penalty keeps class offsets of small classes
near 0). NEE gets its own fit: its error is not the sum of GPP's and Reco's (they are correlated). A host then
reads ``mean +- 1.645 sigma`` as a 90 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.vocabulary import IGBP_CLASSES

# the carbon fluxes every calibration is fitted for (the cross-validation predicts them); a calibration may also
# carry other targets of the vocabulary (the keys of its coefficients)
FLUXES = ("gpp", "reco", "nee")


def calibrated_meaning(period: str, site_model: bool) -> str:
    """What a calibrated spread is, in every file made from the checkpoint (flux files, predictions, priors); short
    enough for a host's long_name buffer (the example Fortran host's is 256 characters)."""
    how = "day + site error model" if site_model else "flux-level error model"
    return (f"calibrated predictive standard deviation of the {period} flux at an unseen site ({how} fitted on "
            "cross-validation held-out sites; mean +- 1.645 sd is a 90 % interval)")
N_BASE = 3  # intercept, log1p(GPP), log1p(Reco)


def design(gpp: np.ndarray, reco: np.ndarray, igbp: np.ndarray) -> np.ndarray:
    """(..., N_BASE + n_classes) regressors; ``igbp`` class indices, NaN (unknown) -> no class offset."""
    gpp, reco, igbp = np.broadcast_arrays(np.asarray(gpp, float), np.asarray(reco, float), np.asarray(igbp, float))
    k = len(IGBP_CLASSES)
    known = np.isfinite(igbp) & (igbp >= 0) & (igbp < k)
    onehot = np.zeros((*igbp.shape, k))
    idx = np.where(known, igbp, 0).astype(int)
    np.put_along_axis(onehot, idx[..., None], known[..., None].astype(float), axis=-1)
    return np.concatenate([np.ones((*gpp.shape, 1)), np.log1p(np.maximum(gpp, 0.0))[..., None],
                           np.log1p(np.maximum(reco, 0.0))[..., None], onehot], axis=-1)


def _fit_one(x: np.ndarray, err: np.ndarray, ridge: float) -> np.ndarray:
    """Gaussian NLL of ``err`` with log sigma = x @ theta, ridge on the class offsets; L-BFGS with the gradient."""
    from scipy.optimize import minimize

    n = len(err)
    e2 = err**2
    pen = np.r_[np.zeros(N_BASE), np.full(x.shape[1] - N_BASE, ridge / n)]

    def f(theta):
        ls = x @ theta
        r = e2 * np.exp(-2.0 * ls)
        val = 0.5 * np.mean(r) + np.mean(ls) + np.sum(pen * theta**2)
        grad = x.T @ (1.0 - r) / n + 2.0 * pen * theta
        return val, grad

    theta0 = np.zeros(x.shape[1])
    theta0[0] = 0.5 * np.log(max(np.mean(e2), 1e-12))
    res = minimize(f, theta0, jac=True, method="L-BFGS-B")
    return res.x



def bind_log_fluxes_and_class(gpp, reco, igbp, bufs, prefix: str) -> tuple[list, object, object, object, object]:
    """The calls both error models' bound programs start with: log1p of GPP and Reco clamped at 0, and each cell's
    IGBP class index (0 where the class is unknown: NaN, +inf, < 0 or >= the number of classes, which compare
    false) with the mask of unknown classes; into ``bufs`` named ``{prefix}_...``. Returns (calls, log GPP,
    log Reco, class index, unknown)."""
    import torch

    n, f64, k = gpp.shape[0], torch.float64, len(IGBP_CLASSES)
    lg, lr = bufs.get(f"{prefix}_log_gpp", (n,), f64), bufs.get(f"{prefix}_log_reco", (n,), f64)
    known, below = bufs.get(f"{prefix}_known", (n,), torch.bool), bufs.get(f"{prefix}_below", (n,), torch.bool)
    unknown = bufs.get(f"{prefix}_unknown", (n,), torch.bool)
    idx_f, idx = bufs.get(f"{prefix}_idx_f", (n,), f64), bufs.get(f"{prefix}_idx", (n,), torch.int64)
    prog = [partial(torch.clamp, gpp, min=0.0, out=lg), lg.log1p_, partial(torch.clamp, reco, min=0.0, out=lr),
            lr.log1p_,
            partial(torch.ge, igbp, 0.0, out=known), partial(torch.lt, igbp, float(k), out=below),
            partial(known.logical_and_, below), partial(torch.logical_not, known, out=unknown),
            partial(idx_f.copy_, igbp), partial(idx_f.masked_fill_, unknown, 0.0), partial(idx.copy_, idx_f)]
    return prog, lg, lr, idx, unknown

@dataclass
class SpreadCalibration:
    """Coefficients per flux (see the module docstring) and what they were fitted on."""

    coef: dict[str, np.ndarray]
    fitted_on: str = ""
    _device_coef: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def fluxes(self) -> tuple[str, ...]:
        """The targets calibrated, in the vocabulary's order."""
        return tuple(v for v in vocabulary.TARGETS if v in self.coef)

    @classmethod
    def fit(cls, pred: dict[str, np.ndarray], obs: dict[str, np.ndarray], igbp: np.ndarray, ridge: float = 100.0,
            fitted_on: str = "") -> SpreadCalibration:
        """From out-of-fold predictions ``pred`` (gpp, reco, nee, and any other target of the vocabulary) and
        observations ``obs`` (NaN = none), same shape; ``igbp`` class index per value (broadcastable)."""
        x = design(pred["gpp"], pred["reco"], igbp)
        coef = {}
        for v in (v for v in vocabulary.TARGETS if v in pred):
            err = np.asarray(pred[v], float) - np.asarray(obs[v], float)
            ok = np.isfinite(err) & np.all(np.isfinite(x), axis=-1)
            if ok.sum() < 10:
                raise CheckpointError(f"spread calibration of {v}: only {int(ok.sum())} out-of-fold values")
            coef[v] = _fit_one(x[ok], err[ok], ridge)
        return cls(coef, fitted_on)

    def sigma(self, gpp, reco, igbp) -> dict[str, np.ndarray]:
        """Calibrated predictive standard deviations (gC m-2 d-1) for the predicted GPP, Reco and a class index."""
        x = design(gpp, reco, igbp)
        return {v: np.exp(x @ self.coef[v]) for v in self.fluxes}

    def sigma_torch(self, gpp, reco, igbp) -> dict:
        """:meth:`sigma` on torch tensors (float64, on their device): what the ensemble's step applies."""
        import torch

        k = len(IGBP_CLASSES)
        known = torch.isfinite(igbp) & (igbp >= 0) & (igbp < k)
        idx = torch.where(known, igbp, torch.zeros_like(igbp)).long()
        out = {}
        for v in self.fluxes:
            c = torch.as_tensor(self.coef[v], dtype=torch.float64, device=gpp.device)
            ls = (c[0] + c[1] * torch.log1p(torch.clamp(gpp, min=0.0)) + c[2] * torch.log1p(torch.clamp(reco, min=0.0))
                  + torch.where(known, c[N_BASE:][idx], torch.zeros((), dtype=torch.float64, device=gpp.device)))
            out[v] = torch.exp(ls)
        return out

    def bind_sigma(self, gpp, reco, igbp, out, bufs) -> list:
        """:meth:`sigma_torch` bound to preallocated tensors: ``out`` (a row (n,) float64 per flux of
        :attr:`fluxes`, by name) <- the sigmas, the same operations in the same order (so the same numbers), nothing
        allocated when the returned calls run. ``bufs``: the workspace buffers of the chunk
        (``get(name, shape, dtype)``)."""
        import torch

        n, f64 = gpp.shape[0], torch.float64
        key = ("cal", str(gpp.device))
        if key not in self._device_coef:
            self._device_coef[key] = {v: torch.as_tensor(self.coef[v][N_BASE:], dtype=f64, device=gpp.device)
                                      for v in self.fluxes}
        offsets = self._device_coef[key]
        prog, a, b, idx, unknown = bind_log_fluxes_and_class(gpp, reco, igbp, bufs, "cal")
        term, off = bufs.get("cal_term", (n,), f64), bufs.get("cal_off", (n,), f64)
        for v in (v for v in self.fluxes if v in out):
            c = self.coef[v]
            ls = out[v]
            prog += [partial(torch.mul, a, float(c[1]), out=ls), partial(ls.add_, float(c[0])),
                     partial(torch.mul, b, float(c[2]), out=term), partial(ls.add_, term),
                     partial(torch.index_select, offsets[v], 0, idx, out=off), partial(off.masked_fill_, unknown, 0.0),
                     partial(ls.add_, off), ls.exp_]
        return prog

    def to_dict(self) -> dict:
        """JSON-able form for the checkpoint header."""
        return {"formula": "log sigma = a + b log1p(gpp) + c log1p(reco) + class offset",
                "classes": list(IGBP_CLASSES), "fitted_on": self.fitted_on,
                "coef": {v: [float(c) for c in self.coef[v]] for v in self.fluxes}}

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> SpreadCalibration:
        """Inverse of :meth:`to_dict`; a header written for other classes or fluxes is an error naming the key."""
        try:
            if list(d["classes"]) != list(IGBP_CLASSES):
                raise CheckpointError(f"{where}: spread calibration classes {d['classes']} differ from "
                                      f"{list(IGBP_CLASSES)}")
            coef = {v: np.asarray(d["coef"][v], dtype=np.float64) for v in (*FLUXES, *d["coef"])}
        except KeyError as exc:
            raise CheckpointError(f"{where}: spread calibration lacks key {exc}") from None
        unknown = sorted(set(coef) - set(vocabulary.TARGETS))
        if unknown:
            raise CheckpointError(f"{where}: spread calibration of {unknown}, which are no targets of the vocabulary "
                                  f"({list(vocabulary.TARGETS)})")
        bad = [v for v in coef if coef[v].shape != (N_BASE + len(IGBP_CLASSES),)]
        if bad:
            raise CheckpointError(f"{where}: spread calibration of {bad} has the wrong number of coefficients")
        return cls(coef, str(d.get("fitted_on", "")))


def interval_coverage(pred: np.ndarray, sigma: np.ndarray, obs: np.ndarray, z: float = 1.645) -> float:
    """Share of observations inside pred +- z sigma (NaN observations ignored)."""
    ok = np.isfinite(obs) & np.isfinite(pred)
    return float(np.mean(np.abs(pred[ok] - obs[ok]) <= z * sigma[ok]))
