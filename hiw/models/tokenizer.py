"""SHIFT (PAPER.md section 3) and the two baselines it is compared with, behind one interface.

- ``shift``: two VQ-VAEs per hand, trajectory (9: 6D global orientation + translation) and pose (90: 15
  joints in 6D). Left and right hands are stacked in the batch, so each codebook serves both hands. A
  token step (4 frames) becomes 4 tokens, interleaved [left-traj, left-pose, right-traj, right-pose].
- ``single``: one VQ-VAE over all 198 numbers (T2M-GPT style); 1 token per step.
- ``lr``: one VQ-VAE over a hand's 99 numbers, hands stacked (the left/right-only split); 2 tokens per step.

The paper trains SHIFT's two VQ-VAEs separately; here their losses are summed in one loop over the same
batches, which is the same thing (no parameter is shared) at half the data loading.
Inputs are z-scored features (B, T, 198) with a per-hand mask (B, T, 2); every loss is a masked mean, so
padding and missing hands never contribute, and the quantizers only learn from valid steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from hiw.models.vqvae import VQVAE, step_mask
from hiw.motion.features import FEATURES, HAND_FEATURES

Variant = Literal["shift", "single", "lr"]
TRAJ = (*range(6), 96, 97, 98)  # a hand's global orientation (6D) and wrist translation
POSE = tuple(range(6, 96))  # a hand's 15 joint rotations (6D)
HAND = tuple(range(HAND_FEATURES))
_TRAJ_SET = set(TRAJ)


class TokenizerConfig(BaseModel):
    """Architecture and loss weights. Defaults are the paper's sizes (4096 x 64 codebooks, width 512)."""

    model_config = ConfigDict(frozen=True)

    variant: Variant = "shift"
    codebook_size: int = 4096
    code_dim: int = 64
    width: int = 512
    depth: int = 3
    dilation_growth: int = 3
    down_t: int = 2  # 2 stride-2 stages: 4x temporal downsampling
    decay: float = 0.99
    commit: float = 0.25
    velocity: float = 0.5  # weight of the trajectory velocity loss (T2M-GPT's default)


PRESETS: dict[str, TokenizerConfig] = {
    "paper": TokenizerConfig(),
    "tiny": TokenizerConfig(codebook_size=256, code_dim=32, width=64, depth=2),
}


@dataclass(frozen=True)
class Part:
    """One VQ-VAE: which of a hand's (or, unstacked, both hands') feature columns it models."""

    name: str
    columns: tuple[int, ...]
    stacked: bool  # hands stacked in the batch (columns index one hand's 99) or not (columns index all 198)


PARTS: dict[str, tuple[Part, ...]] = {
    "shift": (Part("traj", TRAJ, True), Part("pose", POSE, True)),
    "single": (Part("motion", tuple(range(FEATURES)), False),),
    "lr": (Part("hand", HAND, True),),
}


def stream(variant: str) -> list[str]:
    """Names of the tokens of one step, in stream order (e.g. left-traj, left-pose, right-traj, right-pose)."""
    parts = PARTS[variant]
    if not parts[0].stacked:
        return [p.name for p in parts]
    return [f"{side}-{p.name}" for side in ("left", "right") for p in parts]


def stack_hands(x: torch.Tensor) -> torch.Tensor:
    """(B, T, 198) -> (2B, T, 99): left hands, then right hands."""
    return torch.cat([x[..., :HAND_FEATURES], x[..., HAND_FEATURES:]], dim=0)


def unstack_hands(x: torch.Tensor) -> torch.Tensor:
    """(2B, T, 99) -> (B, T, 198)."""
    left, right = x.chunk(2, dim=0)
    return torch.cat([left, right], dim=-1)


def feature_mask(mask: torch.Tensor) -> torch.Tensor:
    """Per-hand frame mask (B, T, 2) -> per-feature weights (B, T, 198)."""
    return mask.repeat_interleave(HAND_FEATURES, dim=-1).float()


@dataclass
class TokenizerOutput:
    recon: torch.Tensor  # (B, T, 198) normalised
    loss: torch.Tensor
    terms: dict[str, float]  # loss components and per-codebook perplexity/usage of this batch


class MotionTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.parts = PARTS[config.variant]
        self.vqvaes = nn.ModuleDict(
            {
                p.name: VQVAE(
                    len(p.columns),
                    config.codebook_size,
                    config.code_dim,
                    config.width,
                    config.depth,
                    config.dilation_growth,
                    config.down_t,
                    config.decay,
                )
                for p in self.parts
            }
        )
        self.step = 2**config.down_t
        self.stream = stream(config.variant)

    def _inputs(self, part: Part, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part's input (N, T, C) and frame mask (N, T)."""
        if part.stacked:
            return stack_hands(x)[..., list(part.columns)], torch.cat([mask[..., 0], mask[..., 1]], dim=0)
        return x[..., list(part.columns)], mask.any(dim=-1)

    def _assemble(self, outputs: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        """Decoded parts -> (B, T, 198). Stacked parts fill a hand's columns; the unstacked part is all 198."""
        first = outputs[self.parts[0].name]
        if not self.parts[0].stacked:
            return first
        hands = first.new_zeros(2 * batch, first.shape[1], HAND_FEATURES)
        for part in self.parts:
            columns = torch.tensor(part.columns, device=first.device)
            hands = hands.index_copy(-1, columns, outputs[part.name])
        return unstack_hands(hands)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> TokenizerOutput:
        decoded = {}
        commit = x.new_zeros(())
        terms: dict[str, float] = {}
        for part in self.parts:
            inputs, frames = self._inputs(part, x, mask)
            out = self.vqvaes[part.name](inputs, frames)
            decoded[part.name] = out.recon
            commit = commit + out.commit_loss
            terms[f"{part.name}_perplexity"] = float(out.perplexity)
            terms[f"{part.name}_used"] = float(out.used)
        recon = self._assemble(decoded, len(x))
        weights = feature_mask(mask)
        recon_loss = (F.smooth_l1_loss(recon, x, reduction="none") * weights).sum() / weights.sum().clamp(min=1)
        velocity = self._velocity_loss(recon, x, weights)
        loss = recon_loss + self.config.commit * commit + self.config.velocity * velocity
        terms.update(loss=loss.item(), recon=recon_loss.item(), commit=commit.item(), velocity=velocity.item())
        return TokenizerOutput(recon, loss, terms)

    @staticmethod
    def _velocity_loss(recon: torch.Tensor, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Smooth-L1 on frame-to-frame differences of the trajectory columns, where both frames are valid."""
        cols = [c for c in range(FEATURES) if c % HAND_FEATURES in _TRAJ_SET]
        w = weights[:, 1:, cols] * weights[:, :-1, cols]
        diff = F.smooth_l1_loss(recon[:, 1:, cols] - recon[:, :-1, cols], x[:, 1:, cols] - x[:, :-1, cols], reduction="none")
        return (diff * w).sum() / w.sum().clamp(min=1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, 198), (B, T, 2) -> codes (B, T // step, len(stream)) in stream order."""
        per_part = {}
        for part in self.parts:
            inputs, frames = self._inputs(part, x, mask)
            per_part[part.name] = self.vqvaes[part.name].encode(inputs, frames)
        if not self.parts[0].stacked:
            return torch.stack([per_part[p.name] for p in self.parts], dim=-1)
        halves = {name: codes.chunk(2, dim=0) for name, codes in per_part.items()}
        return torch.stack([halves[p.name][hand] for hand in (0, 1) for p in self.parts], dim=-1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, L, len(stream)) -> normalised features (B, L * step, 198)."""
        decoded = {}
        for i, part in enumerate(self.parts):
            part_codes = torch.cat([codes[..., i], codes[..., len(self.parts) + i]]) if part.stacked else codes[..., i]
            decoded[part.name] = self.vqvaes[part.name].decode(part_codes)
        return self._assemble(decoded, len(codes))

    def decode_soft(self, probs: torch.Tensor) -> torch.Tensor:
        """Code distributions (B, L, len(stream), K) -> normalised features (B, L * step, 198), differentiable in
        ``probs``: each slot's expected code vector goes through its decoder (the language model's geometric
        alignment, PAPER.md section 4). One-hot ``probs`` decode exactly as ``decode`` does their codes."""
        decoded = {}
        for i, part in enumerate(self.parts):
            part_probs = torch.cat([probs[:, :, i], probs[:, :, len(self.parts) + i]]) if part.stacked else probs[:, :, i]
            vqvae = self.vqvaes[part.name]
            latents = part_probs.to(vqvae.quantizer.codebook.dtype) @ vqvae.quantizer.codebook  # (N, L, D)
            decoded[part.name] = vqvae.decoder(latents.transpose(1, 2)).transpose(1, 2)
        return self._assemble(decoded, len(probs))

    def step_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Per-hand frame mask (B, T, 2) -> per-hand step mask (B, T // step, 2)."""
        return torch.stack([step_mask(mask[..., h], self.step) for h in (0, 1)], dim=-1)

    def codebooks(self) -> dict[str, torch.Tensor]:
        return {p.name: self.vqvaes[p.name].quantizer.codebook for p in self.parts}
