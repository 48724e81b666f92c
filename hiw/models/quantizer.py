"""Vector quantizer with an EMA codebook and dead-code reset (T2M-GPT's ``QuantizeEMAReset``), made mask-aware.

The codebook is not learned by gradient: each training forward moves every used code towards the mean
of the latents assigned to it (exponential moving averages of their sum and count), and a code whose
average count falls below ``reset_threshold`` is restarted on a random latent of the batch, so the whole
codebook stays in use. The encoder learns through the straight-through estimator and the commitment loss.

Only valid steps (``mask`` True) feed the statistics: padding and missing-hand steps never move the
codebook, and a non-finite valid latent raises before any buffer changes. Everything the codebook is
made of lives in buffers, so it travels with ``state_dict`` and checkpoints. A forward with no valid step
changes nothing; before the first training forward the codebook is all zeros (every latent gets code 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

DISTANCE_CHUNK = 4096  # latents per distance block: a 4096 x K float matrix, not N x K at once


@dataclass
class QuantizerOutput:
    quantized: Tensor  # (B, D, L) straight-through: the codes' vectors forward, identity backward
    codes: Tensor  # (B, L) long; meaningless at masked steps
    commit_loss: Tensor  # scalar, mean of (z - q)^2 over valid steps (0 when none is valid)
    perplexity: Tensor  # scalar, exp(entropy) of code usage over valid steps (1 when none is valid)
    used: Tensor  # scalar long, distinct codes over valid steps (0 when none is valid)


class EMAQuantizer(nn.Module):
    def __init__(self, codebook_size: int, code_dim: int, decay: float = 0.99, eps: float = 1e-5, reset_threshold: float = 1.0):
        super().__init__()
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.decay = decay
        self.eps = eps
        self.reset_threshold = reset_threshold
        self.register_buffer("codebook", torch.zeros(codebook_size, code_dim))
        self.register_buffer("code_sum", torch.zeros(codebook_size, code_dim))
        self.register_buffer("code_count", torch.zeros(codebook_size))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizerOutput:
        """Quantize ``z`` (B, D, L); in training, update the codebook from the steps where ``mask`` (B, L) is True."""
        b, d, length = z.shape
        flat = z.transpose(1, 2).reshape(b * length, d)
        if mask is not None and mask.shape != (b, length):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match latents (B, L) = {(b, length)}")
        valid = torch.ones(b * length, dtype=torch.bool, device=z.device) if mask is None else mask.reshape(-1).bool()
        latents = flat[valid]
        if self.training and len(latents):
            self._check_and_initialise(latents)
        codes = self._nearest(flat)
        q = self.codebook[codes]  # from the codebook the codes were chosen with (before this step's EMA update)
        if self.training and len(latents):
            self._update(latents.detach(), codes[valid])
        # Indexing (not masking by multiplication) keeps NaN/inf of masked steps out of the loss and its gradient.
        commit_loss = (latents - q[valid].detach()).pow(2).sum() / max(latents.numel(), 1)
        quantized = flat + (q - flat).detach()
        perplexity, used = code_usage(codes[valid], self.codebook_size)
        return QuantizerOutput(
            quantized=quantized.reshape(b, length, d).transpose(1, 2),
            codes=codes.reshape(b, length),
            commit_loss=commit_loss,
            perplexity=perplexity,
            used=used,
        )

    def quantize(self, z: Tensor) -> Tensor:
        """(B, D, L) latents -> (B, L) index of the nearest code (squared L2)."""
        b, d, length = z.shape
        return self._nearest(z.transpose(1, 2).reshape(b * length, d)).reshape(b, length)

    def dequantize(self, codes: Tensor) -> Tensor:
        """(B, L) codes -> (B, D, L) code vectors."""
        return self.codebook[codes].transpose(1, 2)

    @torch.no_grad()
    def _nearest(self, flat: Tensor) -> Tensor:
        # argmin ||z - c||^2 = argmin (||c||^2 - 2 z.c): ||z||^2 is the same for every code of a row.
        codebook = self.codebook.to(flat.dtype)
        code_sq = codebook.pow(2).sum(1)
        return torch.cat([torch.addmm(code_sq, chunk, codebook.T, alpha=-2).argmin(1) for chunk in flat.split(DISTANCE_CHUNK)])

    @torch.no_grad()
    def _check_and_initialise(self, latents: Tensor) -> None:
        # Check first, so a NaN never reaches a buffer; then start the codebook on the first batch's latents.
        if not torch.isfinite(latents).all():
            raise ValueError("non-finite latents at valid steps: the codebook would be poisoned, update refused")
        if not self.initialised:
            self.codebook.copy_(self._sample(latents, self.codebook_size))
            self.code_sum.copy_(self.codebook)
            self.code_count.fill_(1.0)
            self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, latents: Tensor, codes: Tensor) -> None:
        latents = latents.to(self.codebook.dtype)
        # Per-code sums and counts by scatter, not a (K, N) one-hot matrix (1.3 GB at K=4096, N=80k).
        batch_sum = torch.zeros_like(self.code_sum).index_add_(0, codes, latents)
        batch_count = torch.bincount(codes, minlength=self.codebook_size).to(self.code_count.dtype)
        self.code_sum.mul_(self.decay).add_(batch_sum, alpha=1 - self.decay)
        self.code_count.mul_(self.decay).add_(batch_count, alpha=1 - self.decay)
        # Laplace smoothing (VQ-VAE-2) keeps the division safe; it barely changes counts >= the threshold.
        total = self.code_count.sum()
        smoothed = (self.code_count + self.eps) / (total + self.codebook_size * self.eps) * total
        alive = self.code_count >= self.reset_threshold
        self.codebook.copy_(torch.where(alive[:, None], self.code_sum / smoothed[:, None], self.codebook))
        # Dead codes restart on random latents of this batch, with the statistics of one fresh assignment.
        dead = (~alive).nonzero().squeeze(1)
        if len(dead):
            fresh = self._sample(latents, len(dead))
            self.codebook[dead] = fresh
            self.code_sum[dead] = fresh
            self.code_count[dead] = 1.0

    def _sample(self, latents: Tensor, n: int) -> Tensor:
        """``n`` random rows of ``latents``; tiled with a little noise when there are fewer, so copies differ."""
        if len(latents) < n:
            latents = latents.repeat(-(-n // len(latents)), 1)
            latents = latents + torch.randn_like(latents) * (0.01 / self.code_dim**0.5)
        return latents[torch.randperm(len(latents), device=latents.device)[:n]]


def code_usage(codes: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """(perplexity, distinct codes) of a flat code sequence; (1, 0) for an empty one (zero entropy)."""
    counts = torch.bincount(codes, minlength=codebook_size).float()
    prob = counts / counts.sum().clamp(min=1)
    entropy = -(prob * torch.log(prob.clamp(min=1e-12))).sum()
    return entropy.exp(), (counts > 0).sum()
