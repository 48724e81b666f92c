"""Geometric alignment (PAPER.md section 4, phase 2): the reconstruction loss of what the language model's motion
logits decode to, through the frozen SHIFT tokenizer. The authors' release does not contain this phase; this is
the paper's description, made concrete:

1. For each text-to-motion row, take the decoder logits at the motion-token positions (teacher-forced: the
   positions of the target's codes, after its start token).
2. Restrict each position to its slot's code range (trajectory slots to trajectory codes, pose slots to pose codes).
3. Straight-through Gumbel-softmax at temperature ``tau`` (annealed over the phase): a one-hot code forward, the
   soft distribution's gradient backward.
4. Expected code vectors from the frozen codebooks, through the frozen SHIFT decoders (``decode_soft``).
5. L_rec = smooth-L1 on the normalised features (valid frames of each hand only) + ``keypoint_weight`` x the mean
   keypoint distance (metres) after forward kinematics of each hand's rest skeleton.

The SHIFT model never learns: its parameters are frozen and outside the optimiser; only the LM's logits carry
gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hiw.lm.samples import Batch
from hiw.lm.vocab import MotionVocab
from hiw.models.shift_checkpoint import LoadedTokenizer
from hiw.models.shift_metrics import keypoints
from hiw.models.tokenizer import feature_mask


def temperature(step: int, steps: int, start: float, end: float) -> float:
    """Exponential annealing from ``start`` at step 1 to ``end`` at the last step."""
    ratio = min(max((step - 1) / max(steps - 1, 1), 0.0), 1.0)
    return start * (end / start) ** ratio


def slot_logits(logits: torch.Tensor, labels: torch.Tensor, vocab: MotionVocab, base: int, steps: int) -> torch.Tensor:
    """Logits (N, T, V) of t2m rows -> per-slot code logits (N, steps, width, K), from the position after each row's
    start token. Positions past a row's target are clamped to its last (their frames are masked out later)."""
    n, t, _ = logits.shape
    start = (labels == base + vocab.start).float().argmax(dim=1)  # (N,)
    offsets = torch.arange(steps * vocab.width, device=logits.device)
    positions = (start[:, None] + 1 + offsets).clamp(max=t - 1)  # (N, steps * width)
    picked = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))  # (N, steps * width, V)
    picked = picked.reshape(n, steps, vocab.width, -1)
    k = vocab.codebook_size
    return torch.stack([picked[:, :, s, base + vocab.offset(s) : base + vocab.offset(s) + k] for s in range(vocab.width)], dim=2)


def alignment_loss(
    logits: torch.Tensor, batch: Batch, vocab: MotionVocab, base: int, shift: LoadedTokenizer, tau: float, keypoint_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    rows = batch.aligned
    clips = [batch.clips[r] for r in rows]
    steps = max(len(c.codes) for c in clips)
    step = shift.model.step
    codes = slot_logits(logits[rows].float(), batch.labels[rows], vocab, base, steps)
    onehot = F.gumbel_softmax(codes, tau=tau, hard=True, dim=-1)
    recon = shift.model.decode_soft(onehot)  # (N, steps * step, 198) normalised
    frames = steps * step
    target = torch.zeros_like(recon)
    mask = torch.zeros(len(clips), frames, 2, dtype=torch.bool, device=recon.device)
    for i, clip in enumerate(clips):
        n = len(clip.features)
        target[i, :n] = torch.as_tensor(clip.features, device=recon.device)
        mask[i, :n] = torch.as_tensor(clip.mask, device=recon.device)
    weights = feature_mask(mask)
    features = (F.smooth_l1_loss(recon, target, reduction="none") * weights).sum() / weights.sum().clamp(min=1)
    distances = []
    for i, clip in enumerate(clips):
        # Absent hand-frames are left out of the loss, but a NaN derivative there (a NaN rest skeleton: F-PHAB has no
        # left hand; degenerate 6D rotations) would still reach the gradient as 0 x NaN. So the rest is made finite
        # and those frames take the target's values, which carry no gradient.
        rest = torch.nan_to_num(torch.as_tensor(clip.rest, device=recon.device))
        truth = keypoints(shift.stats.denormalise(target[i]), rest)
        made = keypoints(shift.stats.denormalise(torch.where(weights[i] > 0, recon[i], target[i])), rest)
        distances.append((truth - made).norm(dim=-1)[mask[i]])  # (valid hand-frames, 21) metres
    keypoint = torch.cat(distances).mean() if any(len(d) for d in distances) else recon.new_zeros(())
    loss = features + keypoint_weight * keypoint
    terms = {"rec": loss.item(), "rec_features": features.item(), "rec_keypoint_mm": keypoint.item() * 1000, "tau": tau}
    return loss, terms
