"""The networks: TAM-RL (task encoder + z-modulated forward LSTM) and the plain-LSTM baseline.

TAM-RL (Renganathan et al.; the 2026 carbon-flux paper) adapts one forward model to each site through an embedding
z inferred from the site's own data. Here the task encoder sees a rolling window of the cell's own drivers (and its
static land-cover class) -- what a host model can give at inference, with no flux observations needed:

    per-step projection -> bidirectional LSTM over the window -> [h_fwd_last, h_bwd_first] -> z
    u_t = (1 + g_in(z)) * (W_in f_t) + b_in(z)          (input projection modulated by z)
    h_t, c_t = LSTM(u_t, h_{t-1}, c_{t-1})               (recurrent state stays unmodulated)
    o_t = (1 + g_h(z)) * h_t + b_h(z)                    (FiLM on the hidden state)
    GPP, Reco = softplus(head(o_t)) * scale              (non-negative, gC m-2 d-1; one head per predicted
                                                          target, model/outputs.py)

NEE is never predicted by the network in the product variant ("derived"); the "free" variant adds a third,
unconstrained NEE head so that the carbon-balance penalty and its violation can be studied.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from tamrl_coupler.kernels.batched import BatchedDailyTamrl, BatchedLstm, BatchedNet, BatchedTamrl
from tamrl_coupler.settings.model import ModelConfig


def _add_modulated_lstm(net: nn.Module, n_features: int, hidden: int, embedding: int, n_outputs: int,
                        target_scale: tuple[float, ...], n_positive: int) -> None:
    """The FiLM-modulated forward LSTM and heads both TAM-RL networks share, made after their encoders (the same
    attribute names and creation order, so checkpoints and seeded initialisation are unchanged); FiLM starts as the
    identity modulation."""
    net.in_proj = nn.Linear(n_features, hidden)
    net.film_in = nn.Linear(embedding, 2 * hidden)
    net.lstm = nn.LSTM(hidden, hidden, batch_first=True)
    net.film_h = nn.Linear(embedding, 2 * hidden)
    net.head = nn.Linear(hidden, n_outputs)
    net.register_buffer("target_scale", torch.tensor(target_scale, dtype=torch.float32))
    net.n_positive = n_positive
    for film in (net.film_in, net.film_h):
        nn.init.zeros_(film.weight)
        nn.init.zeros_(film.bias)


@runtime_checkable
class FluxNetwork(Protocol):
    """What the ensemble, training and checkpoints need of a member network (every network in NETWORKS is one,
    and an ``nn.Module``): its state sizes, the task encoder, the training path and one stateful period."""

    hidden: int  # forward LSTM width (the state h, c)
    embedding: int  # size of the task embedding z (0: no task encoder)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (N, W, F) -> z (N, embedding)."""

    def forward_sequence(self, feats: torch.Tensor, windows: torch.Tensor | None, h0: torch.Tensor,
                         c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats (B, T, F), windows (B, T, W, F) -> outputs (B, T, n_out), h, c."""

    def step(self, feat: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One period: feat (N, F), z (N, embedding) -> outputs (N, n_out), h, c."""

    @staticmethod
    def stack(members: list) -> BatchedNet:
        """All members evaluated at once (what the ensemble runs; ``encode``/``step`` are the reference the
        batched evaluator is tested against)."""


def flux_heads(head: nn.Linear, target_scale: torch.Tensor, o: torch.Tensor, n_positive: int) -> torch.Tensor:
    """Output layer shared by every network: the first ``n_positive`` outputs (the predicted targets: GPP, Reco,
    ...) non-negative (softplus), in their units by the target scale; the rest (free heads, e.g. NEE) unconstrained
    (model/outputs.py names them)."""
    a = head(o)
    pos = F.softplus(a[..., :n_positive]) * target_scale[:n_positive]
    if a.shape[-1] == n_positive:
        return pos
    return torch.cat([pos, a[..., n_positive:] * target_scale[n_positive:]], dim=-1)


class TamrlNet(nn.Module):
    """One TAM-RL member. Inputs are encoded features (see :class:`FeatureEncoder`)."""

    def __init__(self, n_features: int, hidden: int = 48, encoder_hidden: int = 24, embedding: int = 16,
                 projection: int = 24, n_outputs: int = 2, target_scale: tuple[float, ...] = (1.0, 1.0),
                 dropout: float = 0.0, n_positive: int = 2):
        super().__init__()
        self.hidden = hidden
        self.embedding = embedding
        self.drop = nn.Dropout(dropout)
        self.enc_proj = nn.Linear(n_features, projection)
        self.enc_lstm = nn.LSTM(projection, encoder_hidden, batch_first=True, bidirectional=True)
        self.enc_out = nn.Linear(2 * encoder_hidden, embedding)
        _add_modulated_lstm(self, n_features, hidden, embedding, n_outputs, target_scale, n_positive)

    @classmethod
    def from_config(cls, cfg: ModelConfig, n_features: int, target_scale: tuple[float, ...]) -> TamrlNet:
        """A member as the model config describes it."""
        return cls(n_features, hidden=cfg.hidden, encoder_hidden=cfg.encoder_hidden, embedding=cfg.embedding,
                   projection=cfg.projection, n_outputs=cfg.n_outputs, target_scale=target_scale,
                   dropout=cfg.dropout, n_positive=len(cfg.heads))

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (N, W, F) -> z (N, E)."""
        p = torch.tanh(self.enc_proj(windows))
        _, (h, _) = self.enc_lstm(p)  # h: (2, N, He): final forward state, final backward state
        return torch.tanh(self.enc_out(torch.cat([h[0], h[1]], dim=-1)))

    def _modulated(self, feats: torch.Tensor, z: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
        g_in, b_in = self.film_in(z).chunk(2, dim=-1)
        u = self.drop(torch.relu((1.0 + g_in) * self.in_proj(feats) + b_in))
        out, (h, c) = self.lstm(u, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        g_h, b_h = self.film_h(z).chunk(2, dim=-1)
        o = self.drop((1.0 + g_h) * out + b_h)
        return flux_heads(self.head, self.target_scale, o, self.n_positive), h.squeeze(0), c.squeeze(0)

    def forward_sequence(self, feats: torch.Tensor, windows: torch.Tensor, h0: torch.Tensor,
                         c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training path. feats (B, T, F); windows (B, T, W, F), the W periods *before* each period (completed
        history only, so z is constant within a period) -> outputs (B, T, n_out), h, c."""
        b, t, w, f = windows.shape
        z = self.encode(windows.reshape(b * t, w, f)).reshape(b, t, -1)
        return self._modulated(feats, z, h0, c0)

    def step(self, feat: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One period. feat (N, F); z (N, E) from :meth:`encode` of the window before it -> (N, n_out), h, c."""
        out, h, c = self._modulated(feat.unsqueeze(1), z.unsqueeze(1), h, c)
        return out.squeeze(1), h, c

    @staticmethod
    def stack(members: list[TamrlNet]) -> BatchedNet:
        """All members evaluated at once (what the ensemble runs; ``encode``/``step`` above are the reference)."""
        return BatchedTamrl(members)


class LstmNet(nn.Module):
    """The plain-LSTM baseline: same features and heads, no task encoder, no modulation."""

    def __init__(self, n_features: int, hidden: int = 64, n_outputs: int = 2,
                 target_scale: tuple[float, ...] = (1.0, 1.0), dropout: float = 0.0, n_positive: int = 2):
        super().__init__()
        self.hidden = hidden
        self.embedding = 0
        self.drop = nn.Dropout(dropout)
        self.in_proj = nn.Linear(n_features, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)
        self.register_buffer("target_scale", torch.tensor(target_scale, dtype=torch.float32))
        self.n_positive = n_positive

    @classmethod
    def from_config(cls, cfg: ModelConfig, n_features: int, target_scale: tuple[float, ...]) -> LstmNet:
        """A member as the model config describes it (its task-encoder sizes do not apply)."""
        return cls(n_features, hidden=cfg.hidden, n_outputs=cfg.n_outputs, target_scale=target_scale,
                   dropout=cfg.dropout, n_positive=len(cfg.heads))

    def forward_sequence(self, feats: torch.Tensor, windows: torch.Tensor | None, h0: torch.Tensor,
                         c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training path; ``windows`` is ignored (no task encoder)."""
        u = self.drop(torch.relu(self.in_proj(feats)))
        out, (h, c) = self.lstm(u, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        return flux_heads(self.head, self.target_scale, self.drop(out), self.n_positive), h.squeeze(0), c.squeeze(0)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """No task encoder: an empty embedding (N, 0)."""
        return windows.new_zeros((windows.shape[0], 0))

    def step(self, feat: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One period; ``z`` is the empty embedding."""
        out, h, c = self.forward_sequence(feat.unsqueeze(1), None, h, c)
        return out.squeeze(1), h, c

    @staticmethod
    def stack(members: list[LstmNet]) -> BatchedNet:
        return BatchedLstm(members)


class DailyTamrlNet(nn.Module):
    """TAM-RL at the daily step: the task encoder is a small MLP over the cell's last 12 completed monthly means
    in calendar slots (``model/history.py``), so z costs one MLP call per cell and month; the forward model is
    TamrlNet's (FiLM-modulated input projection and hidden state, LSTM, softplus heads).

    ``windows`` are the slots' encoded features (N, 12, S); S = the encoded drivers plus latitude / 90."""

    def __init__(self, n_features: int, n_slot_features: int, hidden: int = 64, encoder_hidden: int = 64,
                 embedding: int = 16, n_outputs: int = 2, target_scale: tuple[float, ...] = (1.0, 1.0),
                 dropout: float = 0.0, n_slots: int = 12, n_positive: int = 2):
        super().__init__()
        self.hidden = hidden
        self.embedding = embedding
        self.drop = nn.Dropout(dropout)
        self.enc = nn.Sequential(nn.Linear(n_slots * n_slot_features, encoder_hidden), nn.Tanh(),
                                 nn.Linear(encoder_hidden, encoder_hidden), nn.Tanh(),
                                 nn.Linear(encoder_hidden, embedding), nn.Tanh())
        _add_modulated_lstm(self, n_features, hidden, embedding, n_outputs, target_scale, n_positive)

    @classmethod
    def from_config(cls, cfg: ModelConfig, n_features: int, target_scale: tuple[float, ...]) -> DailyTamrlNet:
        """A member as the model config describes it; the slot features are the encoded drivers (the network's
        features less the derived inputs) plus latitude."""
        from tamrl_coupler.kernels.features import DERIVED_INPUTS

        n_slot = n_features - sum(DERIVED_INPUTS[d] for d in cfg.derived_inputs) + 1
        return cls(n_features, n_slot, hidden=cfg.hidden, encoder_hidden=cfg.encoder_hidden,
                   embedding=cfg.embedding, n_outputs=cfg.n_outputs, target_scale=target_scale,
                   dropout=cfg.dropout, n_slots=cfg.window, n_positive=len(cfg.heads))

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (N, 12, S) slot features -> z (N, E)."""
        return self.enc(windows.flatten(1))

    _modulated = TamrlNet._modulated
    step = TamrlNet.step

    @staticmethod
    def stack(members: list[DailyTamrlNet]) -> BatchedNet:
        """All members at once: the slot MLP batched over members, then TAM-RL's batched forward step."""
        return BatchedDailyTamrl(members)

    def forward_embedded(self, feats: torch.Tensor, z: torch.Tensor, h0: torch.Tensor,
                         c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats (B, T, F) with each day's z (B, T, E) (its month's, see ``daily_ensemble.monthly_embedding``)."""
        return self._modulated(feats, z, h0, c0)

    def forward_sequence(self, feats: torch.Tensor, windows: torch.Tensor, h0: torch.Tensor,
                         c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training path. feats (B, T, F); windows (B, T, 12, S), the slots in force on each day."""
        b, t = windows.shape[:2]
        z = self.encode(windows.reshape(b * t, *windows.shape[2:])).reshape(b, t, -1)
        return self._modulated(feats, z, h0, c0)


NETWORKS: dict[str, type[TamrlNet] | type[LstmNet] | type[DailyTamrlNet]] = {
    "tamrl": TamrlNet, "lstm": LstmNet, "tamrl_daily": DailyTamrlNet}


def build_network(cfg: ModelConfig, n_features: int, target_scale: tuple[float, ...]) -> nn.Module:
    """One member from a :class:`~tamrl_coupler.settings.model.ModelConfig` (training and checkpoint loading agree):
    each network takes from the config what it uses."""
    return NETWORKS[cfg.kind].from_config(cfg, n_features, tuple(float(s) for s in target_scale))
