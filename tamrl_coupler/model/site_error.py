"""The calibrated predictive standard deviation of a flux at an unseen site: a day-level and a site-level part.

Why a site-level part: at a tower the model never saw, most of the error is the tower's own offset, persistent for
years, and it is largest where the tower is least like the training towers -- not where the flux is largest. A
global rescale of the flux level (``model/calibration.py``) is right on average and wrong exactly there (the tenth of
towers worst covered got 0.69-0.74 of their days inside a 90 % interval). So, per flux v (gpp, reco, nee):

    sigma_v^2      = sigma_day^2 + sigma_site^2
    log sigma_day  = a + b log1p(GPP) + c log1p(Reco) + d log(member sd of v + 0.01) + day_class[igbp]
    log sigma_site = e + f log(novelty) + g log1p(GPP) + h log(member sd of v + 0.01) + site_class[igbp]

with GPP, Reco the ensemble-mean prediction, an unknown class offset 0, and ``novelty`` how unlike the training
towers the cell is: for each member, the distance of the cell's task embedding z (the encoder's summary of its last
12 months of drivers) to the mean embeddings of the ``K_NEAR`` nearest training towers, in units of the training
towers' own such distance to each other, averaged over the members (:class:`EmbeddingNovelty`; 1 = as typical as a
training tower is among the others).

The parameters maximise the likelihood of cross-validation held-out errors under a random site offset: the errors of
one site share one standard-normal draw u, scaled by each day's sigma_site (an offset that is proportional to the
season's flux level where the fit says so), on top of independent day errors N(0, sigma_day^2) -- the model that
tells the two parts apart (a ridge keeps class offsets of small classes near 0). ``mean +- 1.645 sigma`` is then a
90 % interval of a day's observed flux.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model.calibration import bind_log_fluxes_and_class
from tamrl_coupler.model.novelty import EmbeddingNovelty
from tamrl_coupler.vocabulary import IGBP_CLASSES

FLUXES = ("gpp", "reco", "nee")
SD_FLOOR = 0.01  # gC m-2 d-1 added to the member sd before its log (members that agree exactly)
N_DAY = 4  # intercept, log1p(GPP), log1p(Reco), log member sd
N_SITE = 4  # intercept, log novelty, log1p(GPP), log member sd
NOVELTY_FLOOR = 1e-3


def _onehot(igbp: np.ndarray) -> np.ndarray:
    igbp = np.asarray(igbp, dtype=np.float64)
    k = len(IGBP_CLASSES)
    known = np.isfinite(igbp) & (igbp >= 0) & (igbp < k)
    out = np.zeros((*igbp.shape, k))
    idx = np.where(known, igbp, 0).astype(int)
    np.put_along_axis(out, idx[..., None], known[..., None].astype(float), axis=-1)
    return out


def day_design(gpp, reco, member_sd, igbp) -> np.ndarray:
    """(..., N_DAY + classes) regressors of log sigma_day."""
    gpp, reco, sd, igbp = np.broadcast_arrays(*(np.asarray(a, float) for a in (gpp, reco, member_sd, igbp)))
    return np.concatenate([np.ones((*gpp.shape, 1)), np.log1p(np.maximum(gpp, 0.0))[..., None],
                           np.log1p(np.maximum(reco, 0.0))[..., None],
                           np.log(np.maximum(sd, 0.0) + SD_FLOOR)[..., None], _onehot(igbp)], axis=-1)


def site_design(novelty, gpp, member_sd, igbp) -> np.ndarray:
    """(..., N_SITE + classes) regressors of log sigma_site."""
    nov, gpp, sd, igbp = np.broadcast_arrays(*(np.asarray(a, float) for a in (novelty, gpp, member_sd, igbp)))
    return np.concatenate([np.ones((*nov.shape, 1)), np.log(np.maximum(nov, NOVELTY_FLOOR))[..., None],
                           np.log1p(np.maximum(gpp, 0.0))[..., None], np.log(np.maximum(sd, 0.0) + SD_FLOOR)[..., None],
                           _onehot(igbp)], axis=-1)


@dataclass
class SiteErrorModel:
    """Per flux: day-level coefficients (N_DAY + classes) and site-level ones (N_SITE + classes), and the novelty
    measure of the checkpoint's own embeddings (see the module docstring)."""

    day: dict[str, np.ndarray]
    site: dict[str, np.ndarray]
    novelty: EmbeddingNovelty | None = None  # None: a model applied to given novelties only (fitting, reports)
    fitted_on: str = ""
    # per flux, the factor on sigma that brings the worst-covered tenth of held-out sites to the target coverage
    # (``training/site_error_fit.py``; 1 = the likelihood's sigma)
    inflation: dict[str, float] = field(default_factory=lambda: {v: 1.0 for v in FLUXES})

    @property
    def fluxes(self) -> tuple[str, ...]:
        """The targets whose spread the model gives."""
        return FLUXES

    def parts(self, gpp, reco, member_sd: dict, novelty, igbp) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(sigma_day, sigma_site) per flux, numpy float64."""
        return {v: (np.exp(day_design(gpp, reco, member_sd[v], igbp) @ self.day[v]),
                    np.exp(site_design(novelty, gpp, member_sd[v], igbp) @ self.site[v])) for v in FLUXES}

    def sigma(self, gpp, reco, member_sd: dict, novelty, igbp) -> dict[str, np.ndarray]:
        """The calibrated predictive standard deviation per flux (gC m-2 d-1)."""
        return {v: np.sqrt(d * d + s * s) * self.inflation[v]
                for v, (d, s) in self.parts(gpp, reco, member_sd, novelty, igbp).items()}

    def sigma_torch(self, gpp, reco, member_sd: dict, z, igbp) -> dict:
        """:meth:`sigma` on torch tensors (float64, on their device), the novelty from the embeddings z (n, M, E)."""
        import torch

        if self.novelty is None:
            raise CheckpointError("site error model without the training towers' embeddings: cannot apply it to z")
        k = len(IGBP_CLASSES)
        known = torch.isfinite(igbp) & (igbp >= 0) & (igbp < k)
        idx = torch.where(known, igbp, torch.zeros_like(igbp)).long()
        lg, lr = torch.log1p(torch.clamp(gpp, min=0.0)), torch.log1p(torch.clamp(reco, min=0.0))
        ln = torch.log(torch.clamp(self.novelty.torch(z), min=NOVELTY_FLOOR))
        day_off, site_off = self._offsets(gpp.device)
        out = {}
        for v in FLUXES:
            a, b = self.day[v], self.site[v]
            lsd = torch.log(torch.clamp(member_sd[v], min=0.0) + SD_FLOOR)
            ls_day = (lg * float(a[1]) + float(a[0]) + lr * float(a[2]) + lsd * float(a[3])
                      + torch.index_select(day_off[v], 0, idx).masked_fill(~known, 0.0))
            ls_site = (ln * float(b[1]) + float(b[0]) + lg * float(b[2]) + lsd * float(b[3])
                       + torch.index_select(site_off[v], 0, idx).masked_fill(~known, 0.0))
            out[v] = torch.exp(ls_day * 2.0).add(torch.exp(ls_site * 2.0)).sqrt().mul(float(self.inflation[v]))
        return out

    def _offsets(self, device) -> tuple[dict, dict]:
        """Class offsets of the day and site parts as float64 tensors on ``device`` (cached)."""
        import torch

        cache = self.__dict__.setdefault("_device", {})
        if str(device) not in cache:
            cache[str(device)] = tuple({v: torch.as_tensor(c[v][n:], dtype=torch.float64, device=device)
                                        for v in FLUXES} for c, n in ((self.day, N_DAY), (self.site, N_SITE)))
        return cache[str(device)]

    def bind_sigma(self, gpp, reco, igbp, rows, z, bufs) -> list:
        """:meth:`sigma_torch` bound to preallocated tensors: ``rows`` (a row (n,) float64 per flux, by name) hold the
        members' standard deviations of the flux on entry and the calibrated sigmas after the returned calls ran
        (the same operations in the same order); ``z`` (n, M, E) the cells' embeddings; nothing is allocated by the
        calls."""
        import torch

        if self.novelty is None:
            raise CheckpointError("site error model without the training towers' embeddings: cannot apply it to z")
        n, f64 = gpp.shape[0], torch.float64
        day_off, site_off = self._offsets(gpp.device)
        nov, ln = bufs.get("se_nov", (n,), f64), bufs.get("se_log_nov", (n,), f64)
        lsd = bufs.get("se_log_sd", (3, n), f64)
        ls_day, ls_site = bufs.get("se_ls_day", (n,), f64), bufs.get("se_ls_site", (n,), f64)
        term, off = bufs.get("se_term", (n,), f64), bufs.get("se_off", (n,), f64)
        prog, lg, lr, idx, unknown = bind_log_fluxes_and_class(gpp, reco, igbp, bufs, "se")
        prog += self.novelty.bind(z, nov, bufs)
        prog += [partial(torch.clamp, nov, min=NOVELTY_FLOOR, out=ln), ln.log_]
        for row, v in enumerate(FLUXES):
            if v not in rows:
                continue
            a, b = self.day[v], self.site[v]
            out = rows[v]
            prog += [partial(torch.clamp, out, min=0.0, out=lsd[row]), partial(lsd[row].add_, SD_FLOOR),
                     lsd[row].log_,
                     partial(torch.mul, lg, float(a[1]), out=ls_day), partial(ls_day.add_, float(a[0])),
                     partial(torch.mul, lr, float(a[2]), out=term), partial(ls_day.add_, term),
                     partial(torch.mul, lsd[row], float(a[3]), out=term), partial(ls_day.add_, term),
                     partial(torch.index_select, day_off[v], 0, idx, out=off), partial(off.masked_fill_, unknown, 0.0),
                     partial(ls_day.add_, off),
                     partial(torch.mul, ln, float(b[1]), out=ls_site), partial(ls_site.add_, float(b[0])),
                     partial(torch.mul, lg, float(b[2]), out=term), partial(ls_site.add_, term),
                     partial(torch.mul, lsd[row], float(b[3]), out=term), partial(ls_site.add_, term),
                     partial(torch.index_select, site_off[v], 0, idx, out=off), partial(off.masked_fill_, unknown, 0.0),
                     partial(ls_site.add_, off),
                     partial(ls_day.mul_, 2.0), ls_day.exp_, partial(ls_site.mul_, 2.0), ls_site.exp_,
                     partial(torch.add, ls_day, ls_site, out=out), out.sqrt_,
                     partial(out.mul_, float(self.inflation[v]))]
        return prog

    def to_dict(self) -> dict:
        if self.novelty is None:
            raise CheckpointError("site error model without the training towers' embeddings cannot be stored")
        return {"formula": "sigma^2 = sigma_day^2 + sigma_site^2; log sigma_day = a + b log1p(gpp) + c log1p(reco) "
                           "+ d log(member sd + 0.01) + class offset; log sigma_site = e + f log(novelty) + g "
                           "log1p(gpp) + h log(member sd + 0.01) + class offset",
                "classes": list(IGBP_CLASSES), "fitted_on": self.fitted_on,
                "day": {v: [float(c) for c in self.day[v]] for v in FLUXES},
                "site": {v: [float(c) for c in self.site[v]] for v in FLUXES},
                "inflation": {v: float(self.inflation[v]) for v in FLUXES},
                "novelty": self.novelty.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> SiteErrorModel:
        try:
            if list(d["classes"]) != list(IGBP_CLASSES):
                raise CheckpointError(f"{where}: site error model classes {d['classes']} differ from "
                                      f"{list(IGBP_CLASSES)}")
            day = {v: np.asarray(d["day"][v], dtype=np.float64) for v in FLUXES}
            site = {v: np.asarray(d["site"][v], dtype=np.float64) for v in FLUXES}
            novelty = EmbeddingNovelty.from_dict(d["novelty"], where)
        except KeyError as exc:
            raise CheckpointError(f"{where}: site error model lacks key {exc}") from None
        k = len(IGBP_CLASSES)
        bad = [v for v in FLUXES if day[v].shape != (N_DAY + k,) or site[v].shape != (N_SITE + k,)]
        if bad:
            raise CheckpointError(f"{where}: site error model of {bad} has the wrong number of coefficients")
        inflation = {v: float(d.get("inflation", {}).get(v, 1.0)) for v in FLUXES}
        if not all(np.isfinite(k) and k > 0 for k in inflation.values()):
            raise CheckpointError(f"{where}: site error model inflation {inflation} must be positive numbers")
        return cls(day, site, novelty, str(d.get("fitted_on", "")), inflation)


def error_model_from_dict(d: dict, where: str = "checkpoint"):
    """The spread model a checkpoint header holds: a :class:`SiteErrorModel` (``kind: site``) or the global
    :class:`~tamrl_coupler.model.calibration.SpreadCalibration`."""
    from tamrl_coupler.model.calibration import SpreadCalibration

    if d.get("kind") == "site":
        return SiteErrorModel.from_dict(d, where)
    return SpreadCalibration.from_dict(d, where)
