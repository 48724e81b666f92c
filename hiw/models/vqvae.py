"""The SHIFT motion tokenizer: a T2M-GPT-style 1D-convolutional VQ-VAE over per-frame motion features.

The encoder halves time ``down_t`` times (strided convolutions with dilated residual stacks between), so
one token covers ``2 ** down_t`` frames (4 frames = 0.27 s at 15 fps); the EMA quantizer
(``hiw.models.quantizer``) maps every step to a code, and the decoder mirrors the encoder with
nearest-neighbour upsampling. Features are (B, T, C) with a (B, T) frame mask (False: padding or a
missing hand); masked frames are zeroed on the way in, and a token step is valid when any of its frames is,
so only those steps train the codebook. The reconstruction loss is the caller's (masked over frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hiw.models.quantizer import EMAQuantizer


class ResConv1DBlock(nn.Module):
    """ReLU, dilated conv (k=3), ReLU, pointwise conv, plus the input: length-preserving."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv1d(width, width, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations growing as ``dilation_growth ** i`` (the receptive field grows
    geometrically); the decoder reverses them so it goes from wide context back to local detail."""

    def __init__(self, width: int, depth: int, dilation_growth: int = 3, reverse_dilation: bool = False):
        super().__init__()
        dilations = [dilation_growth**i for i in range(depth)]
        if reverse_dilation:
            dilations.reverse()
        self.blocks = nn.Sequential(*(ResConv1DBlock(width, d) for d in dilations))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class Encoder(nn.Module):
    """(B, in_dim, T) -> (B, code_dim, T / 2**down_t)."""

    def __init__(self, in_dim: int, code_dim: int, width: int, depth: int = 3, dilation_growth: int = 3, down_t: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            # kernel 4, stride 2, padding 1 halves an even length exactly
            layers += [nn.Conv1d(width, width, 4, 2, 1), Resnet1D(width, depth, dilation_growth)]
        layers.append(nn.Conv1d(width, code_dim, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, code_dim, L) -> (B, out_dim, L * 2**down_t)."""

    def __init__(self, out_dim: int, code_dim: int, width: int, depth: int = 3, dilation_growth: int = 3, down_t: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            layers += [
                Resnet1D(width, depth, dilation_growth, reverse_dilation=True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(width, width, 3, 1, 1),
            ]
        layers += [nn.Conv1d(width, width, 3, 1, 1), nn.ReLU(), nn.Conv1d(width, out_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@dataclass
class VQVAEOutput:
    recon: Tensor  # (B, T, C)
    codes: Tensor  # (B, T // step) long
    step_mask: Tensor  # (B, T // step) bool: token steps with at least one valid frame
    commit_loss: Tensor  # scalar, over valid steps
    perplexity: Tensor  # scalar, code usage over valid steps of this batch
    used: Tensor  # scalar, distinct codes over valid steps of this batch


class VQVAE(nn.Module):
    def __init__(
        self,
        in_dim: int,
        codebook_size: int,
        code_dim: int,
        width: int,
        depth: int = 3,
        dilation_growth: int = 3,
        down_t: int = 2,
        decay: float = 0.99,
    ):
        super().__init__()
        self.in_dim = in_dim
        self.down_t = down_t
        self.encoder = Encoder(in_dim, code_dim, width, depth, dilation_growth, down_t)
        self.quantizer = EMAQuantizer(codebook_size, code_dim, decay=decay)
        self.decoder = Decoder(in_dim, code_dim, width, depth, dilation_growth, down_t)

    @property
    def step(self) -> int:
        """Frames per token."""
        return 2**self.down_t

    def forward(self, x: Tensor, mask: Tensor | None = None) -> VQVAEOutput:
        """Encode, quantize (updating the codebook from valid steps in training) and decode (B, T, C) features."""
        z = self._encode(x, mask)
        steps = z.new_ones(z.shape[0], z.shape[2], dtype=torch.bool) if mask is None else step_mask(mask, self.step)
        q = self.quantizer(z, steps)
        return VQVAEOutput(
            recon=self.decoder(q.quantized).transpose(1, 2),
            codes=q.codes,
            step_mask=steps,
            commit_loss=q.commit_loss,
            perplexity=q.perplexity,
            used=q.used,
        )

    def encode(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, C) features -> (B, T // step) codes; never updates the codebook (whatever the mode)."""
        return self.quantizer.quantize(self._encode(x, mask))

    def decode(self, codes: Tensor) -> Tensor:
        """(B, L) codes -> (B, L * step, C) features."""
        return self.decoder(self.quantizer.dequantize(codes)).transpose(1, 2)

    def _encode(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if x.ndim != 3 or x.shape[2] != self.in_dim:
            raise ValueError(f"expected features (B, T, {self.in_dim}), got {tuple(x.shape)}")
        t = x.shape[1]
        if t == 0 or t % self.step:
            raise ValueError(f"T = {t} frames is not a positive multiple of {self.step} (frames per token): pad or crop the clip")
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask shape {tuple(mask.shape)} does not match features (B, T) = {tuple(x.shape[:2])}")
            x = x.masked_fill(~mask.bool()[..., None], 0.0)  # masked frames carry no signal, whatever they hold
        return self.encoder(x.transpose(1, 2))


def step_mask(mask: Tensor, step: int) -> Tensor:
    """(B, T) frame mask -> (B, T // step) token mask: a token is valid if any of its frames is."""
    b, t = mask.shape
    if t % step:
        raise ValueError(f"T = {t} frames is not a multiple of {step} (frames per token)")
    return mask.bool().reshape(b, t // step, step).any(-1)
