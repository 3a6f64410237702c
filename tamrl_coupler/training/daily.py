"""Training the daily TAM-RL: random one-year crops of many towers, a share of them cold, a fixed schedule.

Why this recipe (cross-validated on the 95 daily towers, see results/cv_daily.md): early stopping on held-out
towers did not beat a fixed schedule of 1000 one-cycle steps; a share of *cold* crops (no history before the crop,
zero state, loss from the first day) removes the cold-start penalty (a daily LSTM trained without them loses half
its GPP skill on a run's first days); hiding whole history slots and optional drivers teaches the model to use what
a host gives. Each crop's history is what stepping the ensemble from the record's start (warm) or from the crop's
start (cold) would hold (``model/history.py``), so training sees what inference sees.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import torch

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.model.checkpoint import n_model_features
from tamrl_coupler.model.daily_ensemble import ensemble_class, monthly_embedding, slot_features
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import LAT_INPUTS, FeatureEncoder, default_drivers, derived_features
from tamrl_coupler.model.history import N_SLOTS, RecordMonths, month_of_day
from tamrl_coupler.model.meta import EnsembleMeta
from tamrl_coupler.model.networks import build_network
from tamrl_coupler.model.outputs import Outputs
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.settings.train import TrainConfig
from tamrl_coupler.training.loop import MemberHistory, head_scales, predictions, training_arrays


class DailyCrops:
    """Crops of one year (or the whole record) with their history slots, features, targets and loss weights."""

    def __init__(self, cfg: TrainConfig, data: FluxDataset, encoder: FeatureEncoder, x: np.ndarray, y: np.ndarray,
                 weight: np.ndarray):
        self.cfg, self.encoder, self.x, self.y, self.weight = cfg, encoder, x, y, weight
        self.derived = list(cfg.model.derived_inputs)
        self.first_day = int(np.asarray(data.time[0], dtype="datetime64[D]").astype(np.int64))
        self.lat = np.nan_to_num(np.asarray(data.lat, dtype=np.float64))
        required = [i for i, d in enumerate(encoder.drivers) if d.required]
        has_met = np.isfinite(x[..., required]).all(axis=-1)
        has_target = weight > 0
        self.sites = np.flatnonzero(has_target.any(axis=1))
        self.start = np.where(has_met.any(axis=1), has_met.argmax(axis=1), 0)  # first day with drivers
        self.t_first = np.where(has_target.any(axis=1), has_target.argmax(axis=1), 0)
        self.t_last = x.shape[1] - 1 - np.where(has_target.any(axis=1), has_target[:, ::-1].argmax(axis=1), 0)
        self.optional = [i for i, d in enumerate(encoder.drivers) if not d.required]
        self.months = RecordMonths(x, self.first_day)
        self.p = self._site_probabilities(cfg.site_sampling, has_target.sum(axis=1), np.asarray(data.igbp))

    def _site_probabilities(self, mode: str, n_obs: np.ndarray, igbp: np.ndarray) -> np.ndarray | None:
        """How often each site of ``self.sites`` is drawn (None: uniformly)."""
        if mode == "by_record":
            w = n_obs[self.sites].astype(np.float64)
        elif mode == "by_class":
            classes = igbp[self.sites]
            w = np.array([1.0 / np.sum(classes == c) for c in classes])
        else:
            return None
        return w / w.sum()

    def draw_sites(self, rng: np.random.Generator) -> np.ndarray:
        """The sites of one batch."""
        return rng.choice(self.sites, self.cfg.batch_size, p=self.p)

    def _draw(self, sites: np.ndarray, rng: np.random.Generator):
        """Each crop's start, whether it is cold, the optional drivers it hides and the history slots it drops."""
        cfg, n_days = self.cfg, self.x.shape[1]
        a = np.zeros(len(sites), dtype=np.int64)
        cold = np.zeros(len(sites), dtype=bool)
        hide = np.zeros((len(sites), self.x.shape[2]), dtype=bool)
        drop = np.zeros((len(sites), N_SLOTS), dtype=bool)
        for i, s in enumerate(sites):
            lo = max(self.start[s], self.t_first[s] - cfg.crop // 2)
            hi = max(lo, min(n_days - cfg.crop, self.t_last[s] - cfg.crop // 2))
            a[i] = rng.integers(lo, hi + 1)
            cold[i] = rng.random() < cfg.cold_fraction
            hide[i, [j for j in self.optional if rng.random() < cfg.optional_dropout]] = True
            if cfg.slot_dropout > 0:
                drop[i] = rng.random(N_SLOTS) < cfg.slot_dropout
        return a, cold, hide, drop

    def batch(self, sites: np.ndarray, rng: np.random.Generator):
        """(features (B, L, F), slots per month (B, K, 12, S), month of each day (B, L), targets (B, L, 3),
        loss weights (B, L)) for crops of ``sites``; days past the record's end are padding with weight 0."""
        cfg = self.cfg
        a, cold, hide, drop = self._draw(sites, rng)
        day_index = a[:, None] + np.arange(cfg.crop)
        inside = day_index < self.x.shape[1]
        day_index = np.minimum(day_index, self.x.shape[1] - 1)
        rows = sites[:, None]
        xs = np.where(inside[..., None] & ~hide[:, None, :], self.x[rows, day_index], np.nan)
        days = torch.from_numpy(self.first_day + day_index)
        lat = torch.from_numpy(self.lat[sites])
        f = self.encoder(torch.from_numpy(xs))
        if self.derived:
            f = torch.cat([f, derived_features(self.derived, days, lat[:, None], "daily")], dim=-1)
        month = month_of_day(days)
        month_index = month - month[:, :1]
        months = month[:, :1].numpy() + np.arange(int(month_index.max()) + 1)
        slots = self.months.tables(sites, months, np.where(cold, a, self.start[sites]))
        slots[np.broadcast_to(hide[:, None, None, :] | drop[:, None, :, None], slots.shape)] = np.nan
        wins = slot_features(self.encoder, torch.from_numpy(slots), lat[:, None].expand(-1, months.shape[1]))
        w = np.where(inside, self.weight[rows, day_index], 0.0)
        warm = ~cold & (a > self.start[sites])
        w[warm, :cfg.burn_in] = 0.0  # a warm crop's LSTM starts from zero: no loss while it spins up
        y = np.where(inside[..., None], self.y[rows, day_index], 0.0)
        return (f, wins, month_index, torch.from_numpy(np.nan_to_num(y)), torch.from_numpy(w.astype(np.float32)))


def _loss(out: torch.Tensor, y: torch.Tensor, w: torch.Tensor, cfg: TrainConfig,
          convention: SignConvention, outputs: Outputs) -> torch.Tensor:
    """Weighted MSE of every target (``outputs.targets``: GPP, Reco and the derived NEE ...) in physical units
    squared ((gC m-2 d-1)^2), as the pooled RMSE weighs them."""
    pred, _ = predictions(out, outputs, convention)
    lw = cfg.loss_weights
    terms = [lw.weight(t) * (pred[t] - y[..., j]) ** 2 for j, t in enumerate(outputs.targets)]
    se = terms[0]
    for term in terms[1:]:
        se = se + term
    return (se * w).sum() / w.sum().clamp(min=1.0)


def train_daily_member(cfg: TrainConfig, crops: DailyCrops, n_features: int, scale: np.ndarray, seed: int,
                       convention: SignConvention) -> tuple[torch.nn.Module, MemberHistory]:
    """One member: ``cfg.steps`` AdamW steps, one-cycle learning rate, the last weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    outputs = Outputs.of(cfg.model)
    net = build_network(cfg.model, n_features, head_scales(outputs, scale))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    losses = []
    net.train()
    for _ in range(cfg.steps):
        f, win, month_index, y, w = crops.batch(crops.draw_sites(rng), rng)
        h0 = torch.zeros(len(f), net.hidden)
        if net.embedding:
            out, _, _ = net.forward_embedded(f, monthly_embedding(net, win, month_index), h0, h0)
        else:
            out, _, _ = net.forward_sequence(f, None, h0, h0)
        loss = _loss(out, y, w, cfg, convention, outputs)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    net.eval()
    chunk = max(1, cfg.steps // 20)  # the loss curve in 20 means
    curve = [float(np.mean(losses[i:i + chunk])) for i in range(0, len(losses), chunk)]
    return net, MemberHistory(seed, cfg.steps, float("nan"), cfg.steps, curve, [])


def train_daily_ensemble(cfg: TrainConfig, data: FluxDataset, convention: SignConvention | str = "uptake_positive",
                         trained_on: str = "") -> tuple[Ensemble, list[MemberHistory]]:
    """Train ``cfg.members`` daily TAM-RL members (or plain-LSTM members, the baseline) on every site of a daily
    dataset (``data.weight``, when the reader kept QC-failed days, weighs each day's loss)."""
    if data.period != "daily" or cfg.model.kind not in ("tamrl_daily", "lstm") or cfg.steps < 1:
        raise InputError(f"{data.source}: the daily recipe needs daily data ({data.period}), model.kind "
                         f"tamrl_daily or lstm ({cfg.model.kind}) and steps > 0 ({cfg.steps})")
    torch.set_num_threads(max(1, cfg.threads))
    convention = SignConvention.parse(convention)
    drivers = default_drivers(tuple(cfg.model.optional_drivers), period="daily")
    x, y, mask = training_arrays(data, drivers, Outputs.of(cfg.model), convention)
    if any(d in cfg.model.derived_inputs for d in LAT_INPUTS) and np.isnan(data.lat).any():
        bad = data.sites[np.isnan(data.lat)][:5].tolist()
        raise InputError(f"{data.source}: model.derived_inputs needs latitude but site(s) {bad} have none")
    weight = (mask * (1.0 if data.weight is None else np.nan_to_num(data.weight))).astype(np.float32)
    encoder = FeatureEncoder.fit(drivers, x)
    crops = DailyCrops(cfg, data, encoder, x, y, weight)
    if len(crops.sites) < 2:
        raise InputError(f"{data.source}: need targets at 2 sites at least, got {len(crops.sites)}")
    scale = np.maximum(y[mask].std(axis=0), 0.1).astype(np.float32)
    n_features = n_model_features(encoder, cfg.model)
    members, history = [], []
    for m in range(cfg.members):
        net, hist = train_daily_member(cfg, crops, n_features, scale, cfg.seed * 1000 + m, convention)
        members.append(net)
        history.append(hist)
    meta = EnsembleMeta(
        drivers=drivers, period="daily", window=cfg.model.window, sign_convention=convention, model=cfg.model,
        n_members=cfg.members, trained_on=trained_on or data.source,
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        extra={"n_sites": int(len(crops.sites)), "steps": cfg.steps, "cold_fraction": cfg.cold_fraction,
               "sites": [str(s) for s in data.sites[crops.sites]],
               # the data policies (FLUXNET2015 CC-BY-4.0, ICOS) ask for the references and the sites used
               "data_license": data.attrs.get("license", ""), "data_citation": data.attrs.get("source", "")},
    )
    return ensemble_class(cfg.model.kind)(members, encoder, meta), history
