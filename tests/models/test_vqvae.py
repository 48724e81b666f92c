"""The SHIFT motion tokenizer: VQ-VAE shapes and training (hiw.models.vqvae), EMA quantizer (hiw.models.quantizer)."""

from __future__ import annotations

import math

import pytest
import torch

from hiw.models.quantizer import EMAQuantizer
from hiw.models.vqvae import VQVAE, step_mask

C = 6  # feature channels
FPS = 15.0


@pytest.fixture(autouse=True)
def single_thread():
    # Tiny models gain nothing from threads, and thread barriers on a busy 2-core machine can slow them 100-fold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_vqvae(**kwargs) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(in_dim=C, codebook_size=64, code_dim=16, width=32, **kwargs)


def buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


def assert_buffers_equal(before: dict[str, torch.Tensor], module: torch.nn.Module) -> None:
    for name, b in module.named_buffers():
        assert torch.equal(before[name], b), name


def sinusoids(n: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, t, C) features from three families (a frequency and a channel pattern each; random phase and
    amplitude per clip), and a mask that pads each clip's end from a random length in [t/2, t] (zeros there)."""
    g = torch.Generator().manual_seed(seed)
    freqs = torch.tensor([0.5, 1.2, 2.5])  # Hz
    patterns = torch.randn(3, C, generator=torch.Generator().manual_seed(123))
    family = torch.randint(0, 3, (n,), generator=g)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    amp = 0.5 + torch.rand(n, 1, 1, generator=g)
    time = torch.arange(t)[None, :, None] / FPS
    x = amp * torch.sin(2 * math.pi * freqs[family][:, None, None] * time + phase) * patterns[family][:, None, :]
    lengths = torch.randint(t // 2, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None] < lengths[:, None]
    return x * mask[..., None], mask


def masked_mse(recon: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((recon - x).pow(2).mean(-1) * mask).sum() / mask.sum()


# --- VQ-VAE -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [144, 4])
def test_shapes(t):
    model = tiny_vqvae()
    x = torch.randn(2, t, C)
    out = model(x)
    assert model.step == 4
    assert out.recon.shape == (2, t, C)
    assert out.codes.shape == out.step_mask.shape == (2, t // 4)
    assert out.codes.dtype == torch.long and out.step_mask.all()
    codes = model.encode(x)
    assert codes.shape == (2, t // 4)
    assert model.decode(codes).shape == (2, t, C)


@pytest.mark.parametrize("t", [6, 143, 0])
def test_length_not_multiple_of_step_raises(t):
    model = tiny_vqvae()
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(1, t, C))
    with pytest.raises(ValueError, match="multiple of 4"):
        model.encode(torch.randn(1, t, C))


def test_down_t_sets_step():
    model = VQVAE(in_dim=C, codebook_size=8, code_dim=4, width=8, depth=1, down_t=3)
    assert model.step == 8
    assert model(torch.randn(1, 24, C)).codes.shape == (1, 3)


def test_step_mask_any_frame_valid():
    mask = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    assert step_mask(mask, 4).tolist() == [[True, False, True], [False, True, False]]
    with pytest.raises(ValueError):
        step_mask(mask[:, :10], 4)


def test_forward_step_mask_and_masked_frames_ignored():
    model = tiny_vqvae()
    x, mask = sinusoids(3, 32)
    model(x, mask)  # initialise the codebook: before that every step gets code 0
    model.eval()
    out = model(x, mask)
    assert torch.equal(out.step_mask, step_mask(mask, 4))
    assert out.used > 1
    # whatever masked frames hold, they are zeroed before encoding
    garbage = torch.where(mask[..., None], x, torch.full_like(x, 1e6))
    assert torch.equal(model(garbage, mask).recon, out.recon)


def test_training_reduces_reconstruction_error_and_uses_codes():
    x, mask = sinusoids(64, 32, seed=1)
    model = tiny_vqvae()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(2)
    initial = None
    for _ in range(100):
        batch = torch.randperm(len(x), generator=g)[:16]
        out = model(x[batch], mask[batch])
        recon_loss = masked_mse(out.recon, x[batch], mask[batch])
        initial = recon_loss.item() if initial is None else initial
        optimiser.zero_grad()
        (recon_loss + 0.02 * out.commit_loss).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        out = model(x, mask)
        final = masked_mse(out.recon, x, mask).item()
        # the tokens alone carry the motion: decode(encode(x)) is the eval reconstruction
        assert torch.allclose(model.decode(model.encode(x, mask)), out.recon, atol=1e-5)
    assert final < 0.3 * initial, (initial, final)
    assert out.used >= 16 and out.perplexity > 8


def test_state_dict_roundtrip_gives_identical_codes():
    model = tiny_vqvae()
    x, mask = sinusoids(8, 32)
    model(x, mask)  # initialises and updates the codebook
    clone = VQVAE(in_dim=C, codebook_size=64, code_dim=16, width=32)
    clone.load_state_dict(model.state_dict())
    assert {"quantizer.codebook", "quantizer.code_sum", "quantizer.code_count", "quantizer.initialised"} <= set(
        model.state_dict()
    )
    assert bool(clone.quantizer.initialised)
    model.eval(), clone.eval()
    assert torch.equal(model.encode(x, mask), clone.encode(x, mask))
    assert torch.equal(model(x, mask).recon, clone(x, mask).recon)


# --- quantizer --------------------------------------------------------------------------------------


def latents(b: int = 4, d: int = 8, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, d, length, generator=torch.Generator().manual_seed(seed))


def trained_quantizer(k: int = 32, d: int = 8, **kwargs) -> EMAQuantizer:
    torch.manual_seed(0)
    q = EMAQuantizer(k, d, **kwargs)
    q(latents(d=d))
    return q


def test_first_forward_initialises_codebook_from_valid_latents():
    torch.manual_seed(0)
    q = EMAQuantizer(32, 8, decay=1.0, reset_threshold=0.0)  # decay 1: the initial codebook stays as it was made
    z = latents(b=1, length=8)  # 8 latents for 32 codes: tiled with a little noise
    mask = torch.ones(1, 8, dtype=torch.bool)
    mask[0, 4:] = False
    q(z, mask)
    assert bool(q.initialised)
    valid = z[0, :, :4].T
    distance = torch.cdist(q.codebook, valid).min(1).values
    assert distance.max() < 0.05  # every code is a (slightly noisy) copy of a valid latent
    assert len(torch.unique(q.codebook, dim=0)) == 32  # ... and no two codes are identical


def test_quantizer_straight_through_and_losses():
    q = trained_quantizer().eval()
    z = latents(seed=1).requires_grad_(True)
    out = q(z)
    assert out.quantized.shape == z.shape and out.codes.shape == (4, 16)
    # forward value: the codes' vectors; backward: identity
    assert torch.allclose(out.quantized, q.dequantize(out.codes))
    out.quantized.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    assert torch.allclose(out.commit_loss, (z - out.quantized).pow(2).mean())
    assert 1 <= out.perplexity <= out.used <= 32
    assert out.used == len(out.codes.unique())


def test_training_forward_quantizes_with_the_codebook_before_its_update():
    q = trained_quantizer()
    z = latents(seed=1)
    before = q.codebook.clone()
    out = q(z)
    assert not torch.equal(q.codebook, before)
    assert torch.allclose(out.quantized, before[out.codes].transpose(1, 2))


def test_eval_changes_no_buffer_and_roundtrip_matches_forward():
    q = trained_quantizer().eval()
    before = buffers(q)
    z = latents(seed=2)
    out = q(z)
    assert_buffers_equal(before, q)
    codes = q.quantize(z)
    assert torch.equal(codes, out.codes)
    assert torch.allclose(q.dequantize(codes), out.quantized, atol=1e-6)  # z + (q - z) is q up to rounding
    # nearest code by brute force
    brute = torch.cdist(z.transpose(1, 2).reshape(-1, 8), q.codebook).argmin(1).reshape(4, 16)
    assert torch.equal(codes, brute)


def test_all_masked_changes_nothing():
    for q in (EMAQuantizer(32, 8), trained_quantizer()):
        before = buffers(q)
        out = q(latents(seed=3) * 1e6, torch.zeros(4, 16, dtype=torch.bool))
        assert_buffers_equal(before, q)
        assert out.commit_loss == 0 and out.used == 0 and out.perplexity == 1


def test_padding_never_moves_codebook_towards_huge_values():
    torch.manual_seed(0)
    q = EMAQuantizer(32, 8)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, :8] = True
    for seed in range(20):
        z = latents(seed=seed)
        z[:, :, 8:] = 1e6  # padding steps hold huge values
        out = q(z, mask)
        assert torch.isfinite(out.commit_loss) and out.commit_loss < 100
    assert torch.isfinite(q.codebook).all()
    scale = max(latents(seed=s)[:, :, :8].abs().max() for s in range(20))
    assert q.codebook.abs().max() <= scale


def test_nan_at_valid_step_raises_before_any_update():
    for q in (EMAQuantizer(32, 8), trained_quantizer()):
        before = buffers(q)
        z = latents(seed=4)
        z[1, 3, 5] = float("nan")
        with pytest.raises(ValueError, match="non-finite latents"):
            q(z)
        z[1, 3, 5] = float("inf")
        with pytest.raises(ValueError, match="non-finite latents"):
            q(z)
        assert_buffers_equal(before, q)


def test_nan_at_masked_step_is_ignored():
    q = trained_quantizer()
    z = latents(seed=5).requires_grad_(True)
    mask = torch.ones(4, 16, dtype=torch.bool)
    mask[1, 5] = False
    with torch.no_grad():
        z[1, :, 5] = float("nan")
    out = q(z, mask)
    assert torch.isfinite(q.codebook).all() and torch.isfinite(q.code_sum).all() and torch.isfinite(q.code_count).all()
    assert torch.isfinite(out.commit_loss)
    out.commit_loss.backward()
    assert torch.isfinite(z.grad).all() and (z.grad[1, :, 5] == 0).all()


def test_ema_update_with_no_decay_is_a_kmeans_step():
    # decay 0: each used code becomes the mean of the latents assigned to it (Laplace smoothing aside)
    q = trained_quantizer(decay=0.0, reset_threshold=0.0)
    z = latents(seed=6)
    codes = q.quantize(z)
    q(z)
    flat = z.transpose(1, 2).reshape(-1, 8)
    for code in codes.unique():
        assert torch.allclose(q.codebook[code], flat[codes.reshape(-1) == code].mean(0), atol=1e-3)
    counts = torch.bincount(codes.reshape(-1), minlength=32).float()
    assert torch.allclose(q.code_count, counts)


def test_dead_codes_restart_on_batch_latents():
    # The codebook starts and trains inside one tight cluster; then the data moves to a far cluster. One code
    # (or a few) takes all of it; every code whose EMA count falls below the threshold restarts on a latent
    # of the new batch (sum = that latent, count = 1), so usage spreads over the new cluster.
    torch.manual_seed(0)
    q = EMAQuantizer(16, 4)
    for _ in range(3):
        q(0.01 * torch.randn(2, 4, 32))
    far = 10.0 + torch.randn(2, 4, 32)
    far_latents = far.transpose(1, 2).reshape(-1, 4)
    used_before = q.eval()(far).used
    q.train()
    restarted = torch.zeros(16, dtype=torch.bool)
    for _ in range(10):
        codes = q.quantize(far)
        expected_count = 0.99 * q.code_count + 0.01 * torch.bincount(codes.reshape(-1), minlength=16)
        dead = expected_count < 1.0
        q(far)
        assert (q.codebook[dead, None] == far_latents).all(-1).any(-1).all()  # each is now a copy of a batch latent
        assert (q.code_count[dead] == 1).all() and torch.equal(q.code_sum[dead], q.codebook[dead])
        assert torch.allclose(q.code_count[~dead], expected_count[~dead])  # live codes keep their EMA count
        restarted |= dead
    assert restarted.sum() >= 8  # the test means something: most codes died and restarted
    assert q.eval()(far).used > used_before + 4


def test_reset_threshold_zero_keeps_every_code():
    torch.manual_seed(0)
    q = EMAQuantizer(16, 4, reset_threshold=0.0)
    q(0.01 * torch.randn(2, 4, 32))
    far = 10.0 + torch.randn(2, 4, 32)
    unused = torch.ones(16, dtype=torch.bool)
    unused[q.quantize(far).unique()] = False
    before = q.codebook.clone()
    q(far)
    assert unused.any() and torch.allclose(q.codebook[unused], before[unused], rtol=1e-4, atol=1e-6)  # Laplace smoothing aside
