"""The shared training loop (hiw.models.loop) on a one-weight model: learning-rate schedule, clipping, validation,
best checkpoint, resuming, autocast, checkpoint files and the cache of loaded models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from hiw.errors import ConfigError
from hiw.models import checkpoints, loop
from hiw.models.checkpoints import BEST, LATEST, load_cached
from hiw.models.loop_settings import LoopSettings, autocast_dtype, check_settings, lr_at

CPU = torch.device("cpu")


class Pull:
    """One weight pulled from 0 towards ``target`` by training; validation measures its distance to ``val_target``.
    With 0 < val_target < target the validation loss falls, then rises again: its minimum is mid-run."""

    kind = "test"

    def __init__(self, target: float = 1.0, val_target: float = 0.5, fingerprint: str = "d", scale: float = 1.0):
        self.target, self.val_target, self.scale = target, val_target, scale
        self.config = {"features": 1}
        self.data = {"fingerprint": fingerprint}
        self.seen_autocast: list[tuple[bool, torch.dtype]] = []

    def build(self, device):
        model = nn.Linear(1, 1, bias=False).to(device)
        nn.init.zeros_(model.weight)
        return model

    def batch(self, rng, device):
        noise = torch.from_numpy(rng.normal(0, 0.01, (8, 1)).astype(np.float32))
        return torch.full((8, 1), self.scale, device=device), (self.target + noise) * self.scale

    def val_batches(self, rng, device, n):
        return [(torch.ones(4, 1, device=device), torch.full((4, 1), self.val_target, device=device)) for _ in range(n)]

    def loss(self, model, batch):
        x, y = batch
        pred = model(x)
        self.seen_autocast.append((torch.is_autocast_enabled("cpu"), pred.dtype))
        loss = (pred.float() - y).pow(2).mean()
        return loss, {"loss": loss.item(), "weight": float(model.weight.detach())}

    def extra(self):
        return {"note": "kept beside the weights"}


def settings(**kw) -> LoopSettings:
    return LoopSettings(**({"steps": 30, "batch": 8, "lr": 0.04, "log_every": 10, "checkpoint_every": 10} | kw))


def lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_lr_warms_up_then_follows_the_cosine_down_to_min_lr():
    s = LoopSettings(steps=110, batch=1, lr=1.0, warmup_steps=10, schedule="cosine", min_lr=0.1)
    assert lr_at(1, s) == pytest.approx(0.1) and lr_at(5, s) == pytest.approx(0.5)
    assert lr_at(10, s) == pytest.approx(1.0)  # the peak, at the end of the warm-up
    assert lr_at(60, s) == pytest.approx(0.1 + 0.5 * 0.9)  # half-way down the cosine
    assert lr_at(110, s) == pytest.approx(0.1) and lr_at(200, s) == pytest.approx(0.1)  # a longer run stays at min_lr
    assert [lr_at(t, s) for t in range(10, 111)] == sorted((lr_at(t, s) for t in range(10, 111)), reverse=True)
    constant = s.model_copy(update={"schedule": "constant"})
    assert lr_at(5, constant) == pytest.approx(0.5) and lr_at(110, constant) == 1.0


def test_the_loop_applies_the_schedule_each_step(tmp_path):
    s = settings(steps=20, warmup_steps=5, schedule="cosine", min_lr=0.004, log_every=1)
    loop.train(tmp_path, Pull(), s, CPU)
    assert [m["lr"] for m in lines(tmp_path)] == pytest.approx([lr_at(t, s) for t in range(1, 21)])
    saved = torch.load(tmp_path / "checkpoints" / LATEST, weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.004)


def test_clipping_bounds_the_gradient_norm(tmp_path):
    norms = []

    def after_clipping(optimizer, args, kwargs):
        norms.append(float(torch.cat([p.grad.flatten() for g in optimizer.param_groups for p in g["params"]]).norm()))

    hook = register_optimizer_step_pre_hook(after_clipping)
    try:
        loop.train(tmp_path / "clipped", Pull(scale=30.0), settings(steps=5, clip_norm=0.5, log_every=1), CPU)
        clipped = list(norms)
        norms.clear()
        loop.train(tmp_path / "free", Pull(scale=30.0), settings(steps=5, log_every=1), CPU)
    finally:
        hook.remove()
    assert max(clipped) <= 0.5 + 1e-5
    assert min(norms) > 100  # the same gradients unclipped
    assert all(m["grad_norm"] > 100 for m in lines(tmp_path / "clipped"))  # logged: the norm before clipping


def test_validation_every_n_steps_and_the_best_checkpoint(tmp_path):
    result = loop.train(tmp_path, Pull(), settings(val_every=2, log_every=100), CPU)
    logged = lines(tmp_path)
    assert [m["step"] for m in logged] == list(range(2, 31, 2))
    val = {m["step"]: m["val_loss"] for m in logged}
    best_step = min(val, key=val.get)
    assert 2 < best_step < 30  # the curve turns: the best is not simply the last
    best = torch.load(tmp_path / "checkpoints" / BEST, weights_only=True)
    assert best["step"] == best_step and best["best"] == {"step": best_step, "val_loss": val[best_step]}
    assert result.best == tmp_path / "checkpoints" / BEST and result.best_val_loss == val[best_step]
    assert (float(best["model"]["weight"]) - 0.5) ** 2 == pytest.approx(val[best_step])
    assert best["note"] == "kept beside the weights"
    # extended: the best survives the resume, and is replaced only by a lower validation loss
    extended = loop.train(tmp_path, Pull(), settings(steps=40, val_every=2, log_every=100), CPU)
    assert extended.resumed_from == 30 and extended.best_val_loss == val[best_step]
    assert torch.load(tmp_path / "checkpoints" / BEST, weights_only=True)["step"] == best_step


def test_a_best_checkpoint_newer_than_the_resumed_step_is_redone(tmp_path):
    straight = loop.train(tmp_path / "a", Pull(), settings(steps=16, val_every=1), CPU)
    best_step = torch.load(straight.best, weights_only=True)["step"]
    assert 10 < best_step <= 16
    # a crash after the best was saved, before latest.pt caught up: latest.pt is still step 10
    run = tmp_path / "b"
    loop.train(run, Pull(), settings(steps=16, val_every=1), CPU)
    (run / "checkpoints" / LATEST).write_bytes((run / "checkpoints" / "step-0000010.pt").read_bytes())
    resumed = loop.train(run, Pull(), settings(steps=16, val_every=1), CPU)
    assert resumed.resumed_from == 10
    assert [m["step"] for m in lines(run)] == list(range(1, 17))  # the lost tail's lines dropped, then relogged
    redone = torch.load(resumed.best, weights_only=True)
    assert redone["step"] == best_step and redone["best"]["val_loss"] == pytest.approx(straight.best_val_loss)


def test_resume_refuses_other_data_another_config_or_another_kind(tmp_path):
    loop.train(tmp_path, Pull(), settings(steps=10), CPU)
    with pytest.raises(ConfigError, match="other data"):
        loop.train(tmp_path, Pull(fingerprint="other"), settings(steps=20), CPU)
    other = Pull()
    other.config = {"features": 2}
    with pytest.raises(ConfigError, match="another model config"):
        loop.train(tmp_path, other, settings(steps=20), CPU)
    other = Pull()
    other.kind = "lm"
    with pytest.raises(ConfigError, match="holds a test run, not lm"):
        loop.train(tmp_path, other, settings(steps=20), CPU)
    assert loop.train(tmp_path, Pull(), settings(steps=20), CPU).resumed_from == 10


def test_checkpoints_load_weights_only_and_a_step_is_repeatable(tmp_path):
    result = loop.train(tmp_path, Pull(), settings(steps=20, val_every=5), CPU)
    for path in (tmp_path / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        assert {"kind", "step", "model", "optimizer", "rng", "torch_rng", "model_config", "settings", "data", "best"} <= set(
            state
        )
    half = tmp_path / "half"
    loop.train(half, Pull(), settings(steps=10, val_every=5), CPU)
    resumed = loop.train(half, Pull(), settings(steps=20, val_every=5), CPU)
    a = torch.load(result.checkpoint, weights_only=True)["model"]["weight"]
    assert torch.equal(a, torch.load(resumed.checkpoint, weights_only=True)["model"]["weight"])


def test_bf16_autocast_runs_on_the_cpu_when_asked(tmp_path):
    job = Pull()
    result = loop.train(tmp_path, job, settings(steps=20, precision="bf16", val_every=10), CPU)
    assert job.seen_autocast and all(on and dtype == torch.bfloat16 for on, dtype in job.seen_autocast)
    assert result.last["weight"] > 0.5  # it still learns: from 0 towards 1
    fp32 = Pull()
    loop.train(tmp_path / "fp32", fp32, settings(steps=2), CPU)
    assert all(not on and dtype == torch.float32 for on, dtype in fp32.seen_autocast)
    assert autocast_dtype("auto", CPU) is None  # measured slower on this CPU: auto keeps fp32 there


def test_bad_settings_are_usage_errors_named_by_flag():
    for bad, message in [
        ({"steps": 0}, "--steps must be at least 1"),
        ({"clip_norm": -1.0}, "--clip-norm must be a finite number >= 0"),
        ({"lr": math.nan}, "--lr must be"),
        ({"schedule": "linear"}, "--schedule must be one of constant, cosine"),
        ({"precision": "fp16"}, "--precision must be one of auto, fp32, bf16"),
        ({"schedule": "cosine", "min_lr": 1.0}, "--min-lr"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_settings(settings().model_copy(update=bad))


def test_loaded_models_are_cached_per_file_and_device(tmp_path):
    loop.train(tmp_path, Pull(), settings(steps=10), CPU)
    calls = []

    def load(path, device):
        calls.append((path.name, str(device)))
        return {"weights": checkpoints.load_state(path, device)["model"]}

    checkpoints.clear_cache()
    first = load_cached(tmp_path, "cpu", load)
    assert load_cached(tmp_path / "checkpoints" / LATEST, "cpu", load) is first  # the run folder names its latest.pt
    assert load_cached(tmp_path, "meta", load) is not first  # another device, another copy
    loop.train(tmp_path, Pull(), settings(steps=20), CPU)  # latest.pt rewritten
    again = load_cached(tmp_path, "cpu", load)
    assert again is not first and not torch.equal(again["weights"]["weight"], first["weights"]["weight"])
    assert calls == [(LATEST, "cpu"), (LATEST, "meta"), (LATEST, "cpu")]
