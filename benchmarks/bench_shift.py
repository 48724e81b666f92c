"""SHIFT against the single VQ-VAE and the left/right split (figures in docs/BENCHMARKS.md).

Same training data, steps, batch and sizes for each variant: the train split of procedural clips plus the
train split of all F-PHAB sequences (real one-hand motion, built with the precomputed tracker). Each
trained model is evaluated on the held-out test split of each source: MPJPE (mm) and acceleration error
(mm/frame^2) in joint space, codebook usage and perplexity, and training throughput (windows/s).

Then the paper-size SHIFT (4096 x 64 codebooks, width 512) for ``--paper-steps`` steps on the same data, for
its training throughput on this machine (0 skips it).

Run: .venv/bin/python benchmarks/bench_shift.py [--steps 2000] [--clips 2000] [--preset tiny] [--batch 32]
     [--paper-steps 5] [--paper-batch 32] [--device auto] [--precision fp32|bf16|auto] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))

from hiw import runtime  # noqa: E402

runtime.configure()

import torch  # noqa: E402

from hiw.config import load_config  # noqa: E402
from hiw.data.sequences import dataset_sequences, procedural_sequences, screen  # noqa: E402
from hiw.data.stats import compute_stats  # noqa: E402
from hiw.flows.build import build_plain  # noqa: E402
from hiw.models.loop_settings import pick_device  # noqa: E402
from hiw.models.shift_checkpoint import load_tokenizer  # noqa: E402
from hiw.models.shift_eval import evaluate  # noqa: E402
from hiw.models.shift_runs import model_config, train_settings  # noqa: E402
from hiw.models.shift_train import train  # noqa: E402
from hiw.storage import list_versions, load_manifest  # noqa: E402

FPHAB = PROJECT.parent / "shared" / "fixtures" / "pose3d" / "fphab"
WORK = PROJECT / ".cache" / "bench-shift"
VARIANTS = ("shift", "single", "lr")


def fphab_dataset(stride: int = 1) -> Path:
    """Every ``stride``-th F-PHAB sequence (all by default) built once into a dataset (cached under .cache/bench-shift)."""
    suffix = f"-every-{stride}" if stride > 1 else ""
    out = WORK / f"fphab-dataset{suffix}"
    if list_versions(out):
        return out
    inputs = WORK / f"fphab-in{suffix}"
    inputs.mkdir(parents=True, exist_ok=True)
    for path in sorted(FPHAB.glob("Subject_*/*/*/skeleton.txt"))[::stride]:
        subject, action, number = path.parts[-4:-1]
        shutil.copy(path, inputs / f"{subject}_{action}_{number}.txt")
    print(f"building F-PHAB dataset from {len(list(inputs.iterdir()))} sequences ...", file=sys.stderr)
    cfg = load_config(videos=str(inputs), out=out, tracker="precomputed", min_both_hands_frac=0, window_s=9.6, workers=2)
    summary = build_plain(cfg)
    print(f"  {summary.clips_accepted} clips accepted, rejects {summary.rejects_by_reason}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--clips", type=int, default=2000, help="procedural clips (80%% train, 10%% test)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--paper-steps", type=int, default=5)
    parser.add_argument("--paper-batch", type=int, default=32)
    parser.add_argument("--precision", default=None, help="the training loop's precision (default: the preset's, fp32)")
    parser.add_argument("--smoke", action="store_true", help="3 steps, 40 clips, every 20th F-PHAB file: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.clips, args.paper_steps, args.paper_batch = 3, 40, 1, 2
    if not FPHAB.is_dir():
        sys.exit(f"missing {FPHAB} (the shared F-PHAB fixture)")
    device = pick_device(args.device)
    fphab = fphab_dataset(20 if args.smoke else 1)
    train_seqs = screen(procedural_sequences(args.clips, 0, "train") + dataset_sequences(fphab, "train"), 4)
    test_sets = {
        "procedural": screen(procedural_sequences(args.clips, 0, "test"), 4),
        "fphab": screen(dataset_sequences(fphab, "test"), 4),
    }
    fingerprint = f"bench-procedural-{args.clips}+{load_manifest(fphab).content_id(('motion',))}"
    stats = compute_stats(train_seqs.kept, fingerprint)
    settings = train_settings(args.preset, steps=args.steps, batch=args.batch, precision=args.precision)
    print(
        f"train: {train_seqs.describe()}; test: "
        + ", ".join(f"{k} {len(v.kept)}" for k, v in test_sets.items())
        + f"; {settings.steps} steps x batch {settings.batch}, preset {args.preset}, device {device}, {settings.precision}"
    )
    results = {}
    for variant in VARIANTS:
        run = WORK / f"run-{args.preset}-{variant}"
        shutil.rmtree(run, ignore_errors=True)
        config = model_config(args.preset, variant)
        started = time.perf_counter()
        result = train(run, config, settings, train_seqs.kept, stats, {"fingerprint": fingerprint}, device)
        loaded = load_tokenizer(run, device)
        reports = {name: evaluate(loaded, data.kept, name, dict(data.skipped)) for name, data in test_sets.items()}
        params = sum(p.numel() for p in loaded.model.parameters())
        speed = result.last["sequences_per_s"]  # measured before the last checkpoint write
        results[variant] = {"windows_per_s": speed, "params": params, "train_s": time.perf_counter() - started}
        for name, report in reports.items():
            books = " ".join(f"{k}: usage {b.usage:.2f} ppl {b.perplexity:.0f}" for k, b in report.codebooks.items())
            results[variant][name] = report.model_dump(include={"mpjpe_mm", "local_mpjpe_mm", "accel_mm"})
            print(
                f"{variant:7s} {name:10s} mpjpe_mm={report.mpjpe_mm:7.2f} local_mpjpe_mm={report.local_mpjpe_mm:6.2f} "
                f"accel_mm={report.accel_mm:6.3f}  {books}"
            )
        print(f"{variant:7s} {params / 1e6:.2f} M parameters, {speed:.1f} windows/s training on {device}")
    for name in test_sets:
        base = results["single"][name]
        for variant in ("shift", "lr"):
            r = results[variant][name]
            print(
                f"{name}: {variant}/single  mpjpe ratio={r['mpjpe_mm'] / base['mpjpe_mm']:.3f}  "
                f"local mpjpe ratio={r['local_mpjpe_mm'] / base['local_mpjpe_mm']:.3f}  "
                f"accel ratio={r['accel_mm'] / base['accel_mm']:.3f}"
            )
    if args.paper_steps:
        run = WORK / "run-paper-shift"
        shutil.rmtree(run, ignore_errors=True)
        paper = train_settings(
            "paper", steps=args.paper_steps, batch=args.paper_batch, log_every=args.paper_steps, precision=args.precision
        )
        result = train(run, model_config("paper", "shift"), paper, train_seqs.kept, stats, {"fingerprint": fingerprint}, device)
        results["paper_shift_windows_per_s"] = result.last["sequences_per_s"]
        print(f"paper-size shift: {result.last['sequences_per_s']:.1f} windows/s training (batch {paper.batch}) on {device}")
        shutil.rmtree(run, ignore_errors=True)
    suffix = f"-{args.precision}" if args.precision else ""
    (WORK / f"results-{args.preset}-{args.steps}{suffix}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
