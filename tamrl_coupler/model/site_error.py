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
from tamrl_coupler.vocabulary import IGBP_CLASSES

FLUXES = ("gpp", "reco", "nee")
K_NEAR = 3
SD_FLOOR = 0.01  # gC m-2 d-1 added to the member sd before its log (members that agree exactly)
N_DAY = 4  # intercept, log1p(GPP), log1p(Reco), log member sd
N_SITE = 4  # intercept, log novelty, log1p(GPP), log member sd
NOVELTY_FLOOR = 1e-3
# pseudo-observations pulling each class offset to 0 (chosen nested on the monthly CV: 100 left EBF, SAV under-covered)
RIDGE = 2.0


def _nearest_mean(d: np.ndarray, k: int) -> np.ndarray:
    k = min(k, d.shape[-1])
    return np.sort(d, axis=-1)[..., :k].mean(axis=-1)


@dataclass
class EmbeddingNovelty:
    """How unlike the training towers a cell is, from its task embedding (see the module docstring).

    ``centres`` (M, K, E): each member's mean embedding of each training tower; ``scale`` (M,): each member's
    median over the towers of their mean distance to the ``K_NEAR`` nearest other towers."""

    centres: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, centres: np.ndarray) -> EmbeddingNovelty:
        c = np.asarray(centres, dtype=np.float32)
        if c.ndim != 3 or c.shape[1] < 2:
            raise CheckpointError(f"embedding novelty: centres must be (members, towers >= 2, embedding), got "
                                  f"{c.shape}")
        d = np.linalg.norm(c[:, :, None, :].astype(np.float64) - c[:, None, :, :], axis=-1)
        d[:, np.arange(c.shape[1]), np.arange(c.shape[1])] = np.inf
        scale = np.median(_nearest_mean(d, K_NEAR), axis=1)
        return cls(c, np.maximum(scale, 1e-6).astype(np.float32))

    def __call__(self, z: np.ndarray, rows: int = 512) -> np.ndarray:
        """z (..., M, E) -> novelty (...) float64 (NaN where z is), ``rows`` embeddings at a time."""
        z = np.asarray(z)
        flat = z.reshape(-1, *z.shape[-2:])
        out = np.full(len(flat), np.nan)
        ok = np.flatnonzero(np.isfinite(flat).all(axis=(1, 2)))
        c = self.centres.astype(np.float64)
        for i in range(0, len(ok), rows):
            sel = ok[i:i + rows]
            d = np.linalg.norm(flat[sel].astype(np.float64)[:, :, None, :] - c, axis=-1)  # (rows, M, K)
            out[sel] = (_nearest_mean(d, K_NEAR) / self.scale.astype(np.float64)).mean(axis=-1)
        return out.reshape(z.shape[:-2])

    def device_arrays(self, device) -> tuple:
        """(centres transposed (M, E, K), squared norms (M, 1, K), scale (M, 1)) float64 on ``device``, cached."""
        import torch

        key = str(device)
        cache = self.__dict__.setdefault("_device", {})
        if key not in cache:
            c = torch.as_tensor(self.centres, dtype=torch.float64, device=device)
            cache[key] = (c.transpose(1, 2).contiguous(), (c * c).sum(dim=-1)[:, None, :],
                          torch.as_tensor(self.scale, dtype=torch.float64, device=device)[:, None])
        return cache[key]

    def torch(self, z):
        """:meth:`__call__` on a torch tensor z (n, M, E) on its device -> (n,) float64 (the arithmetic of
        :meth:`bind`: |z|^2 + |c|^2 - 2 z.c, so the two agree bit for bit)."""
        import torch

        ct, cc, scale = self.device_arrays(z.device)
        zt = z.to(torch.float64).transpose(0, 1).contiguous()  # (M, n, E)
        d2 = (zt * zt).sum(dim=-1, keepdim=True) + cc
        d2 = d2.add_(torch.bmm(zt, ct), alpha=-2.0).clamp_(min=0.0).sqrt_()
        near = torch.topk(d2, min(K_NEAR, d2.shape[-1]), dim=-1, largest=False).values.mean(dim=-1)
        return (near / scale).mean(dim=0)

    def bind(self, z, out, bufs) -> list:
        """:meth:`torch` bound to preallocated tensors: ``out`` (n,) float64 <- novelty of z (n, M, E); nothing is
        allocated when the returned calls run."""
        import torch

        n, m, e = z.shape
        f64 = torch.float64
        ct, cc, scale = self.device_arrays(z.device)
        k = min(K_NEAR, ct.shape[-1])
        zt, sq = bufs.get("nov_zt", (m, n, e), f64), bufs.get("nov_sq", (m, n, e), f64)
        zz, dot = bufs.get("nov_zz", (m, n, 1), f64), bufs.get("nov_dot", (m, n, ct.shape[-1]), f64)
        d2 = bufs.get("nov_d2", (m, n, ct.shape[-1]), f64)
        vals, idx = bufs.get("nov_vals", (m, n, k), f64), bufs.get("nov_idx", (m, n, k), torch.int64)
        near = bufs.get("nov_near", (m, n), f64)
        return [partial(zt.copy_, z.transpose(0, 1)), partial(torch.mul, zt, zt, out=sq),
                partial(torch.sum, sq, -1, True, out=zz), partial(torch.add, zz, cc, out=d2),
                partial(torch.bmm, zt, ct, out=dot), partial(d2.add_, dot, alpha=-2.0),
                partial(d2.clamp_, min=0.0), d2.sqrt_,
                partial(torch.topk, d2, k, -1, False, out=(vals, idx)), partial(torch.mean, vals, -1, out=near),
                partial(near.div_, scale), partial(torch.mean, near, 0, out=out)]

    def to_dict(self) -> dict:
        return {"k_near": K_NEAR, "centres": self.centres.astype(np.float32).tolist(),
                "scale": self.scale.astype(np.float32).tolist()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> EmbeddingNovelty:
        try:
            centres = np.asarray(d["centres"], dtype=np.float32)
            scale = np.asarray(d["scale"], dtype=np.float32)
        except KeyError as exc:
            raise CheckpointError(f"{where}: embedding novelty lacks key {exc}") from None
        if int(d.get("k_near", K_NEAR)) != K_NEAR or centres.ndim != 3 or scale.shape != centres.shape[:1]:
            raise CheckpointError(f"{where}: embedding novelty of shape {centres.shape} / scale {scale.shape} "
                                  f"(k_near {d.get('k_near')}) does not fit (members, towers, embedding), k_near "
                                  f"{K_NEAR}")
        return cls(centres, scale)


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


def random_offset_nll(theta, xd, xs, err, site, n_sites: int, ridge: float, torch_mod):
    """Mean negative log-likelihood (per day) of ``err`` under day errors N(0, exp(2 xd@a)) plus a site offset
    shared by a site's days, exp(xs@b) u with one u ~ N(0, 1) per site, with a ridge on the class offsets.
    (Covariance D + t t^T per site: Sherman-Morrison gives its inverse and determinant.)"""
    t = torch_mod
    nd = xd.shape[1]
    a, b = theta[:nd], theta[nd:]
    d = t.exp(2.0 * (xd @ a))  # day variances
    scale = t.exp(xs @ b)  # each day's site-offset scale
    inv = 1.0 / d
    seg = t.zeros(n_sites, dtype=theta.dtype)
    big_a = seg.index_add(0, site, scale * scale * inv)
    big_b = seg.index_add(0, site, scale * err * inv)
    big_c = seg.index_add(0, site, err * err * inv)
    log_d = seg.index_add(0, site, t.log(d))
    q = 1.0 + big_a
    nll = 0.5 * (log_d + t.log(q) + big_c - big_b**2 / q).sum() / len(err)
    pen = ridge / len(err) * ((a[N_DAY:] ** 2).sum() + (b[N_SITE:] ** 2).sum())
    return nll + pen


def _fit_random_offset(xd: np.ndarray, xs: np.ndarray, err: np.ndarray, site: np.ndarray, n_sites: int,
                       ridge: float) -> np.ndarray:
    """Coefficients (day, then site) minimising :func:`random_offset_nll`: L-BFGS with torch's gradient."""
    import torch
    from scipy.optimize import minimize

    xd_t, xs_t, e_t, s_t = (torch.as_tensor(a) for a in (xd, xs, err, site))

    def f(theta_np):
        theta = torch.as_tensor(theta_np, dtype=torch.float64).requires_grad_(True)
        val = random_offset_nll(theta, xd_t, xs_t, e_t, s_t, n_sites, ridge, torch)
        val.backward()
        return float(val.detach()), theta.grad.numpy().copy()

    theta0 = np.zeros(xd.shape[1] + xs.shape[1])
    var = max(float(np.mean(err**2)), 1e-12)
    theta0[0], theta0[xd.shape[1]] = 0.5 * np.log(0.6 * var), 0.5 * np.log(0.4 * var)
    return minimize(f, theta0, jac=True, method="L-BFGS-B").x


@dataclass
class SiteErrorModel:
    """Per flux: day-level coefficients (N_DAY + classes) and site-level ones (N_SITE + classes), and the novelty
    measure of the checkpoint's own embeddings (see the module docstring)."""

    day: dict[str, np.ndarray]
    site: dict[str, np.ndarray]
    novelty: EmbeddingNovelty | None = None  # None: a model applied to given novelties only (fitting, reports)
    fitted_on: str = ""
    # per flux, the factor on sigma that brings the worst-covered tenth of held-out sites to the target coverage
    # (:func:`fit_inflation`; 1 = the likelihood's sigma)
    inflation: dict[str, float] = field(default_factory=lambda: {v: 1.0 for v in FLUXES})

    @staticmethod
    def fit_coefficients(pred: dict[str, np.ndarray], member_sd: dict[str, np.ndarray], novelty: np.ndarray,
                         obs: dict[str, np.ndarray], igbp: np.ndarray, site: np.ndarray, ridge: float = RIDGE,
                         member_sd_term: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Day and site coefficients from held-out predictions (arrays of one shape, NaN = none): ``site`` the
        site index of each value, ``novelty`` per value (the site part uses each site's mean log novelty).
        ``member_sd_term=False`` keeps the member-spread coefficient at 0 (a CV ensemble smaller than the
        checkpoint's has noisier spreads than the checkpoint will)."""
        site = np.broadcast_to(np.asarray(site), np.shape(pred["gpp"]))
        if not member_sd_term:  # log(1 - floor + floor) = 0: a column of zeros, its coefficient stays 0
            member_sd = {v: np.where(np.isfinite(pred["gpp"]), 1.0 - SD_FLOOR, np.nan) for v in FLUXES}
        igbp = np.broadcast_to(np.asarray(igbp, float), site.shape)
        day, sitec = {}, {}
        for v in FLUXES:
            err = np.asarray(pred[v], float) - np.asarray(obs[v], float)
            xd_all = day_design(pred["gpp"], pred["reco"], member_sd[v], igbp)
            ok = np.isfinite(err) & np.isfinite(xd_all).all(axis=-1) & np.isfinite(novelty)
            if ok.sum() < 10:
                raise CheckpointError(f"site error model of {v}: only {int(ok.sum())} held-out values")
            ids, s_idx = np.unique(site[ok], return_inverse=True)
            xs = site_design(novelty[ok], pred["gpp"][ok], member_sd[v][ok], igbp[ok])
            theta = _fit_random_offset(xd_all[ok], xs, err[ok], s_idx, len(ids), ridge)
            day[v], sitec[v] = theta[:xd_all.shape[-1]], theta[xd_all.shape[-1]:]
        return day, sitec

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
        """:meth:`sigma_torch` bound to preallocated tensors: ``rows`` (3, n) float64 hold the members' standard
        deviations of gpp, reco and nee on entry and the calibrated sigmas after the returned calls ran (the same
        operations in the same order); ``z`` (n, M, E) the cells' embeddings; nothing is allocated by the calls."""
        import torch

        if self.novelty is None:
            raise CheckpointError("site error model without the training towers' embeddings: cannot apply it to z")
        n, f64 = gpp.shape[0], torch.float64
        k = len(IGBP_CLASSES)
        day_off, site_off = self._offsets(gpp.device)
        lg, lr = bufs.get("se_log_gpp", (n,), f64), bufs.get("se_log_reco", (n,), f64)
        nov, ln = bufs.get("se_nov", (n,), f64), bufs.get("se_log_nov", (n,), f64)
        lsd = bufs.get("se_log_sd", (3, n), f64)
        known, below = bufs.get("se_known", (n,), torch.bool), bufs.get("se_below", (n,), torch.bool)
        unknown = bufs.get("se_unknown", (n,), torch.bool)
        idx_f, idx = bufs.get("se_idx_f", (n,), f64), bufs.get("se_idx", (n,), torch.int64)
        ls_day, ls_site = bufs.get("se_ls_day", (n,), f64), bufs.get("se_ls_site", (n,), f64)
        term, off = bufs.get("se_term", (n,), f64), bufs.get("se_off", (n,), f64)
        prog = [partial(torch.clamp, gpp, min=0.0, out=lg), lg.log1p_, partial(torch.clamp, reco, min=0.0, out=lr),
                lr.log1p_, partial(torch.clamp, rows, min=0.0, out=lsd), partial(lsd.add_, SD_FLOOR), lsd.log_,
                partial(torch.ge, igbp, 0.0, out=known), partial(torch.lt, igbp, float(k), out=below),
                partial(known.logical_and_, below), partial(torch.logical_not, known, out=unknown),
                partial(idx_f.copy_, igbp), partial(idx_f.masked_fill_, unknown, 0.0), partial(idx.copy_, idx_f)]
        prog += self.novelty.bind(z, nov, bufs)
        prog += [partial(torch.clamp, nov, min=NOVELTY_FLOOR, out=ln), ln.log_]
        for row, v in enumerate(FLUXES):
            a, b = self.day[v], self.site[v]
            out = rows[row]
            prog += [partial(torch.mul, lg, float(a[1]), out=ls_day), partial(ls_day.add_, float(a[0])),
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


def site_coverage(err: np.ndarray, sigma: np.ndarray, min_obs: int = 6, z: float = 1.645) -> np.ndarray:
    """Per site (rows of (site, time) arrays): the share of its values inside +- z sigma (sites with >= min_obs)."""
    ok = np.isfinite(err) & np.isfinite(sigma)
    inside = np.abs(err) <= z * sigma
    return np.array([inside[i][ok[i]].mean() for i in range(err.shape[0]) if ok[i].sum() >= min_obs])


def fit_inflation(err: np.ndarray, sigma: np.ndarray, target_q10: float = 0.75, max_coverage: float = 0.95,
                  grid: np.ndarray | None = None) -> float:
    """The smallest factor k on sigma (grid 1.00, 1.01, ...) with which the tenth of sites worst covered by
    +- 1.645 k sigma still has ``target_q10`` of its values inside, unless that takes the pooled coverage above
    ``max_coverage`` (then the largest k below it). ``err``, ``sigma``: (site, time) held-out errors and sigmas."""
    grid = np.round(np.arange(1.0, 2.0001, 0.01), 2) if grid is None else grid
    ok = np.isfinite(err) & np.isfinite(sigma)
    best = 1.0
    for k in grid:
        if np.mean(np.abs(err[ok]) <= 1.645 * k * sigma[ok]) > max_coverage:
            break
        best = float(k)
        if np.quantile(site_coverage(err, k * sigma), 0.1) >= target_q10:
            break
    return best


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score of N(mu, sigma^2) forecasts of ``obs`` (a proper score; lower is
    better; gC m-2 d-1)."""
    from scipy.stats import norm

    z = (obs - mu) / sigma
    return sigma * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))


def error_model_from_dict(d: dict, where: str = "checkpoint"):
    """The spread model a checkpoint header holds: a :class:`SiteErrorModel` (``kind: site``) or the global
    :class:`~tamrl_coupler.model.calibration.SpreadCalibration`."""
    from tamrl_coupler.model.calibration import SpreadCalibration

    if d.get("kind") == "site":
        return SiteErrorModel.from_dict(d, where)
    return SpreadCalibration.from_dict(d, where)
