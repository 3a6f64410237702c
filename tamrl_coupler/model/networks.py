"""The networks: TAM-RL (task encoder + z-modulated forward LSTM) and the plain-LSTM baseline.

TAM-RL (Renganathan et al.; the 2026 carbon-flux paper) adapts one forward model to each site through an embedding
z inferred from the site's own data. Here the task encoder sees a rolling window of the cell's own drivers (and its
static land-cover class) -- what a host model can give at inference, with no flux observations needed:

    per-step projection -> bidirectional LSTM over the window -> [h_fwd_last, h_bwd_first] -> z
    u_t = (1 + g_in(z)) * (W_in f_t) + b_in(z)          (input projection modulated by z)
    h_t, c_t = LSTM(u_t, h_{t-1}, c_{t-1})               (recurrent state stays unmodulated)
    o_t = (1 + g_h(z)) * h_t + b_h(z)                    (FiLM on the hidden state)
    GPP, Reco = softplus(head(o_t)) * scale              (non-negative, gC m-2 d-1)

NEE is never predicted by the network in the product variant ("derived"); the "free" variant adds a third,
unconstrained NEE head so that the carbon-balance penalty and its violation can be studied.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tamrl_coupler.model.batched import BatchedLstm, BatchedNet, BatchedTamrl


class TamrlNet(nn.Module):
    """One TAM-RL member. Inputs are encoded features (see :class:`FeatureEncoder`)."""

    def __init__(self, n_features: int, hidden: int = 48, encoder_hidden: int = 24, embedding: int = 16,
                 projection: int = 24, n_outputs: int = 2, target_scale: tuple[float, ...] = (1.0, 1.0),
                 dropout: float = 0.0):
        super().__init__()
        self.hidden = hidden
        self.embedding = embedding
        self.drop = nn.Dropout(dropout)
        self.enc_proj = nn.Linear(n_features, projection)
        self.enc_lstm = nn.LSTM(projection, encoder_hidden, batch_first=True, bidirectional=True)
        self.enc_out = nn.Linear(2 * encoder_hidden, embedding)
        self.in_proj = nn.Linear(n_features, hidden)
        self.film_in = nn.Linear(embedding, 2 * hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.film_h = nn.Linear(embedding, 2 * hidden)
        self.head = nn.Linear(hidden, n_outputs)
        self.register_buffer("target_scale", torch.tensor(target_scale, dtype=torch.float32))
        for film in (self.film_in, self.film_h):  # start as the identity modulation
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)

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
        return self._heads(o), h.squeeze(0), c.squeeze(0)

    def _heads(self, o: torch.Tensor) -> torch.Tensor:
        a = self.head(o)
        pos = F.softplus(a[..., :2]) * self.target_scale[:2]
        if a.shape[-1] == 2:
            return pos
        return torch.cat([pos, a[..., 2:] * self.target_scale[2:]], dim=-1)

    def forward_sequence(self, feats: torch.Tensor, windows: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
        """Training path. feats (B, T, F); windows (B, T, W, F), the W periods *before* each period (completed
        history only, so z is constant within a period) -> outputs (B, T, n_out), h, c."""
        b, t, w, f = windows.shape
        z = self.encode(windows.reshape(b * t, w, f)).reshape(b, t, -1)
        return self._modulated(feats, z, h0, c0)

    def step(self, feat: torch.Tensor, z: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
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
                 target_scale: tuple[float, ...] = (1.0, 1.0), dropout: float = 0.0, **_: object):
        super().__init__()
        self.hidden = hidden
        self.embedding = 0
        self.drop = nn.Dropout(dropout)
        self.in_proj = nn.Linear(n_features, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)
        self.register_buffer("target_scale", torch.tensor(target_scale, dtype=torch.float32))

    _heads = TamrlNet._heads

    def forward_sequence(self, feats, windows, h0, c0):
        u = self.drop(torch.relu(self.in_proj(feats)))
        out, (h, c) = self.lstm(u, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        return self._heads(self.drop(out)), h.squeeze(0), c.squeeze(0)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """No task encoder: an empty embedding (N, 0)."""
        return windows.new_zeros((windows.shape[0], 0))

    def step(self, feat, z, h, c):
        out, h, c = self.forward_sequence(feat.unsqueeze(1), None, h, c)
        return out.squeeze(1), h, c

    @staticmethod
    def stack(members: list[LstmNet]) -> BatchedNet:
        return BatchedLstm(members)


NETWORKS = {"tamrl": TamrlNet, "lstm": LstmNet}


def build_network(cfg, n_features: int, target_scale: tuple[float, ...]) -> nn.Module:
    """One member from a :class:`~tamrl_coupler.model.config.ModelConfig` (training and checkpoint loading agree)."""
    return NETWORKS[cfg.kind](n_features, hidden=cfg.hidden, encoder_hidden=cfg.encoder_hidden,
                              embedding=cfg.embedding, projection=cfg.projection, n_outputs=cfg.n_outputs,
                              target_scale=tuple(float(s) for s in target_scale), dropout=cfg.dropout)
