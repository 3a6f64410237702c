"""Training one ensemble: independently seeded members, random crops, optional-driver dropout, early stopping.

Each member holds out its own random ``val_fraction`` of the training *sites* (grouped by site, so early stopping
measures generalisation to unseen sites, like the CV does), and keeps the weights of its best validation epoch.
"""

from __future__ import annotations

import copy
import datetime as _dt
from dataclasses import dataclass

import numpy as np
import torch

from tamrl_coupler import vocabulary
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.model.checkpoint import n_model_features
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import (
    LAT_INPUTS,
    Driver,
    FeatureEncoder,
    default_drivers,
    derived_features,
    period_index,
)
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.networks import build_network
from tamrl_coupler.model.outputs import Outputs, free_name
from tamrl_coupler.physics.carbon import SignConvention, nee_from_components
from tamrl_coupler.settings.model import ModelConfig
from tamrl_coupler.settings.train import TrainConfig


@dataclass
class MemberHistory:
    """One member's training: its seed, best epoch and validation loss, and the loss curves."""

    seed: int
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    train_loss: list[float]
    val_loss: list[float]


def training_arrays(data: FluxDataset, drivers: list[Driver], outputs: Outputs | None = None,
                    convention: SignConvention = SignConvention.UPTAKE_POSITIVE
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (S, T, D) physical drivers, y (S, T, K) the model's targets (``outputs.targets``, default the product
    model's: gpp, reco, nee; NEE in ``convention``), mask (S, T) of complete targets."""
    outputs = Outputs.of(ModelConfig()) if outputs is None else outputs
    required = {d.name for d in drivers if d.required}
    x = data.driver_array([d.name for d in drivers], required=required)
    if not data.has_targets(outputs.targets):
        raise InputError(f"{data.source}: no {'/'.join(outputs.targets)} targets to train on (it has "
                         f"{sorted(data.targets)})")
    y = np.stack([data.targets[k] for k in outputs.targets], axis=-1).astype(np.float32)
    if "nee" in outputs.targets and convention is SignConvention.ATMOSPHERE_POSITIVE:
        nee = outputs.targets.index("nee")
        y[..., nee] = -y[..., nee]
    mask = np.isfinite(y).all(axis=-1)
    return x, y, mask


def _windows(feats: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T + W, F) features front-padded by W periods -> (B, T, W, F): for each period the W periods *before*
    it (completed history only: the task embedding is constant within a period, as in stateful inference)."""
    return feats[:, :-1].unfold(1, window, 1).permute(0, 1, 3, 2)


class _Batcher:
    """Builds feature tensors for crops of sites, with the missing-value encoding and optional-driver dropout."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray, features, window: int,
                 optional_cols: list[int], pidx: np.ndarray, lat: np.ndarray, noise: np.ndarray | None = None):
        self.w = window
        # training-time Gaussian noise on the drivers, physical units (D,); 0 for the categorical ones
        self.noise = None if noise is None or not np.any(noise) else torch.as_tensor(noise, dtype=torch.float32)
        pad = np.full((x.shape[0], window, x.shape[2]), np.nan, dtype=np.float32)
        self.xpad = torch.from_numpy(np.concatenate([pad, x], axis=1))
        # calendar period of every padded time step (the padding precedes the record) and each site's latitude
        self.pidx = torch.as_tensor(np.concatenate([pidx[0] - window + np.arange(window), pidx]), dtype=torch.int64)
        self.lat = torch.as_tensor(np.nan_to_num(np.asarray(lat, dtype=np.float32)))
        self.y = torch.from_numpy(np.nan_to_num(y))
        self.mask = torch.from_numpy(mask)
        self.features = features  # (x (..., D), pidx (...), lat (...)) -> (..., F)
        self.optional_cols = optional_cols
        has = mask.any(axis=1)
        self.first = np.where(has, mask.argmax(axis=1), 0)
        self.last = np.where(has, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), mask.shape[1] - 1)

    def _feats(self, xp: torch.Tensor, sites, tidx: torch.Tensor) -> torch.Tensor:
        lat = self.lat[torch.as_tensor(sites)][:, None]
        return self.features(xp, self.pidx[tidx], lat)

    def full(self, sites: np.ndarray, drop: list[int] | None = None):
        xp = self.xpad[sites].clone()
        if drop:
            xp[:, :, drop] = float("nan")
        tidx = torch.arange(xp.shape[1])[None].expand(len(sites), -1)
        f = self._feats(xp, sites, tidx)
        return f[:, self.w:], _windows(f, self.w), self.y[sites], self.mask[sites]

    def crops(self, sites: np.ndarray, length: int, burn_in: int, dropout: float, rng: np.random.Generator,
              cold_fraction: float = 0.0):
        """Random crops of ``sites``; a share ``cold_fraction`` of them start cold: no history before the crop
        (what a run started there holds) and a loss from the first period (no burn-in)."""
        t_total = self.mask.shape[1]
        length = min(length, t_total)
        starts = []
        for s in sites:
            lo = min(max(0, self.first[s] - length // 2), t_total - length)
            hi = max(lo, min(t_total - length, self.last[s] - length // 2))
            starts.append(int(rng.integers(lo, hi + 1)))
        idx = torch.as_tensor(np.array(starts))[:, None] + torch.arange(length + self.w)[None]
        xp = self.xpad[torch.as_tensor(sites)[:, None], idx].clone()
        cold = torch.zeros(len(sites), dtype=torch.bool)
        if cold_fraction > 0:  # drawn only then, so that recipes without cold crops keep their random stream
            cold = torch.from_numpy(rng.random(len(sites)) < cold_fraction)
            xp[cold, :self.w] = float("nan")
        if dropout > 0 and self.optional_cols:
            hide = torch.from_numpy(rng.random((len(sites), len(self.optional_cols))) < dropout)
            for j, col in enumerate(self.optional_cols):
                xp[hide[:, j], :, col] = float("nan")
        if self.noise is not None:
            g = torch.from_numpy(rng.standard_normal(xp.shape, dtype=np.float32))
            xp = xp + g * self.noise
        f = self._feats(xp, sites, idx)
        tidx = idx[:, :length]  # original time index of each crop period
        rows = torch.as_tensor(sites)[:, None]
        m = self.mask[rows, tidx].clone()
        late = (torch.as_tensor(np.array(starts)) > 0) & ~cold
        m[late, :burn_in] = False
        return f[:, self.w:], _windows(f, self.w), self.y[rows, tidx], m


def predictions(out: torch.Tensor, outputs: Outputs, convention: SignConvention
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Network outputs (..., K) -> every target's prediction by name (a derived target from its components, or
    from its free head in "free" variants), and the derived targets from their components (the balance)."""
    pred = {t: out[..., outputs.head(t)] for t in outputs.predicted}
    derived = {t: nee_from_components(pred[a], pred[b], convention) for t, a, b in outputs.derived}
    for t in outputs.targets:
        if t not in pred:
            pred[t] = out[..., outputs.head(free_name(t))] if t in outputs.free else derived[t]
    return pred, derived


def _loss(out: torch.Tensor, y: torch.Tensor, m: torch.Tensor, scale: torch.Tensor, cfg: TrainConfig,
          convention: SignConvention, outputs: Outputs) -> torch.Tensor:
    """Standardised MSE on every target (``outputs.targets``: the columns of y and scale); for free variants the
    balance penalty in physical units."""
    mf = m.to(out.dtype)
    n = mf.sum().clamp(min=1.0)
    pred, derived = predictions(out, outputs, convention)
    w = cfg.loss_weights
    terms = [w.weight(t) * (((pred[t] - y[..., j]) / scale[j]) ** 2 * mf).sum() for j, t in enumerate(outputs.targets)]
    loss = terms[0]
    for term in terms[1:]:
        loss = loss + term
    loss = loss / n
    if outputs.free and cfg.balance_weight > 0:
        # physical units: (gC m-2 d-1)^2, on every period (the identity must hold with or without targets)
        for t in outputs.free:
            loss = loss + cfg.balance_weight * ((pred[t] - derived[t]) ** 2).mean()
    return loss


def epoch_sites(sites: np.ndarray, n_obs: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """One epoch's order of training sites: each once ("uniform"), or as many draws with probability proportional
    to each site's number of target periods ("by_record")."""
    if mode == "by_record":
        return rng.choice(sites, size=len(sites), p=n_obs / n_obs.sum())
    return rng.permutation(sites)


def head_scales(outputs: Outputs, scale: np.ndarray) -> tuple[float, ...]:
    """The target scale of each network output: its target's (a free head: its derived target's)."""
    column = {t: j for j, t in enumerate(outputs.targets)}
    return tuple(float(scale[column[t]]) for t in (*outputs.predicted, *outputs.free))


def train_member(cfg: TrainConfig, batcher: _Batcher, fit_sites: np.ndarray, val_sites: np.ndarray,
                 n_features: int, scale: np.ndarray, seed: int, convention: SignConvention, progress=None):
    """Train one member; returns (network with its best weights, history)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mc = cfg.model
    outputs = Outputs.of(mc)
    net = build_network(mc, n_features, head_scales(outputs, scale))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(2, cfg.patience // 3))
    scale_t = torch.as_tensor(scale if cfg.loss_units == "standardised" else np.ones_like(scale), dtype=torch.float32)
    has_val = len(val_sites) > 0
    if has_val:
        vf, vw, vy, vm = batcher.full(val_sites)
    else:  # no held-out sites: a fixed schedule, cosine decay over max_epochs, the last weights kept
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs)
    best, best_state, best_epoch, bad, smooth = float("inf"), None, -1, 0, float("inf")
    hist_train, hist_val = [], []
    n_obs = batcher.mask[torch.as_tensor(fit_sites)].sum(dim=1).numpy().astype(np.float64)
    for epoch in range(cfg.max_epochs):
        net.train()
        order = epoch_sites(fit_sites, n_obs, cfg.site_sampling, rng)
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            sites = order[i:i + cfg.batch_size]
            f, w, y, m = batcher.crops(sites, cfg.crop, cfg.burn_in, cfg.optional_dropout, rng, cfg.cold_fraction)
            h0 = torch.zeros(len(sites), net.hidden)
            out, _, _ = net.forward_sequence(f, w, h0, h0)
            loss = _loss(out, y, m, scale_t, cfg, convention, outputs)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        hist_train.append(float(np.mean(losses)))
        net.eval()
        if not has_val:
            sched.step()
            best_epoch = epoch
            if progress is not None:
                progress.set_postfix(member=seed, epoch=epoch, loss=f"{hist_train[-1]:.3f}")
            continue
        with torch.no_grad():
            h0 = torch.zeros(len(val_sites), net.hidden)
            out, _, _ = net.forward_sequence(vf, vw, h0, h0)
            val = float(_loss(out, vy, vm, scale_t, cfg, convention, outputs))
        hist_val.append(val)
        # noisy validation sites: decide on a moving average, and not before min_epochs
        a = cfg.val_smoothing
        smooth = val if epoch == 0 or a == 0 else a * smooth + (1 - a) * val
        sched.step(smooth)
        if epoch + 1 < cfg.min_epochs:
            best_state, best_epoch = None, epoch
        elif smooth < best - 1e-5 or best_state is None:
            best, best_state, best_epoch, bad = smooth, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            bad += 1
        if progress is not None:
            progress.set_postfix(member=seed, epoch=epoch, val=f"{val:.3f}", best=f"{best:.3f}")
        if bad >= cfg.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, MemberHistory(seed, best_epoch, best, len(hist_train), hist_train, hist_val)


def train_ensemble(cfg: TrainConfig, data: FluxDataset, convention: SignConvention | str = "uptake_positive",
                   trained_on: str = "") -> tuple[Ensemble, list[MemberHistory]]:
    """Train ``cfg.members`` independently seeded members on all sites of ``data``."""
    from tqdm.auto import tqdm

    torch.set_num_threads(max(1, cfg.threads))
    convention = SignConvention.parse(convention)
    drivers = default_drivers(tuple(cfg.model.optional_drivers))
    outputs = Outputs.of(cfg.model)
    x, y, mask = training_arrays(data, drivers, outputs, convention)
    encoder = FeatureEncoder.fit(drivers, x)
    derived = list(cfg.model.derived_inputs)
    if any(d in derived for d in LAT_INPUTS) and np.isnan(data.lat).any():
        bad = data.sites[np.isnan(data.lat)][:5].tolist()
        raise InputError(f"{data.source}: model.derived_inputs has 'lat' but site(s) {bad} have no latitude")

    def features(xr: torch.Tensor, pidx: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        f = encoder(xr)
        if not derived:
            return f
        return torch.cat([f, derived_features(derived, pidx, lat, data.period)], dim=-1)

    yv = y[mask]
    scale = (np.maximum(yv.std(axis=0), 0.1).astype(np.float32) if len(yv)
             else np.ones(len(outputs.targets), np.float32))
    optional_cols = [i for i, d in enumerate(drivers) if not d.required]
    noise = None
    if cfg.input_noise > 0:
        categorical = vocabulary.categorical_drivers()
        noise = np.array([0.0 if d.name in categorical else cfg.input_noise * float(np.nanstd(x[..., i]))
                          for i, d in enumerate(drivers)])
    batcher = _Batcher(x, y, mask, features, cfg.model.window, optional_cols,
                       period_index(data.time, data.period) if derived else np.zeros(len(data.time), np.int64),
                       data.lat, noise)
    sites_with_targets = np.flatnonzero(mask.any(axis=1))
    if len(sites_with_targets) < 2:
        raise InputError(f"{data.source}: need targets at 2 sites at least to train with held-out sites, got "
                         f"{len(sites_with_targets)}")
    members, history = [], []
    bar = tqdm(range(cfg.members), desc=f"train {cfg.model.kind}", disable=not cfg.progress, leave=False)
    for m in bar:
        seed = cfg.seed * 1000 + m
        rng = np.random.default_rng(seed + 7919)
        perm = rng.permutation(sites_with_targets)
        n_val = max(1, int(round(cfg.val_fraction * len(perm)))) if cfg.val_fraction > 0 else 0
        net, hist = train_member(cfg, batcher, np.sort(perm[n_val:]), np.sort(perm[:n_val]),
                                 n_model_features(encoder, cfg.model),
                                 scale, seed, convention, progress=bar if cfg.progress else None)
        members.append(net)
        history.append(hist)
    meta = EnsembleMeta(
        drivers=drivers, period=data.period, window=cfg.model.window, sign_convention=convention, model=cfg.model,
        n_members=cfg.members, trained_on=trained_on or data.source,
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        extra={"best_epochs": [h.best_epoch for h in history], "n_sites": int(len(sites_with_targets))},
    )
    return Ensemble(members, encoder, meta), history
