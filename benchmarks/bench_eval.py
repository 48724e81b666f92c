"""The evaluation suite's instrument check (figures in docs/BENCHMARKS.md): does the evaluator separate real
text-motion pairs from shuffled ones, and how strong is the retrieval baseline?

Two datasets, each with a test split nothing trains on:
- procedural clips (``--clips``, 80/10/10 by clip id);
- every F-PHAB sequence built through the pipeline (precomputed tracker), one clip per sequence, with its action
  as a narration ("the right hand pour milk") beside the build's kinematic caption; split by sequence.
Per dataset: ``hiw eval train`` (a real subprocess: its wall time and peak memory are the training cost on this
CPU), then ``hiw eval baselines`` (real, shuffled, retrieval; text-to-motion and motion-to-text). The target is
real-data R@3 >= 0.6 on procedural and >= 5x the shuffled (chance) baseline's.

Run: .venv/bin/python benchmarks/bench_eval.py [--clips 2000] [--steps 600] [--fphab-steps 600] [--samples 10]
     [--replications 20] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLCONFIGDIR", str(PROJECT / ".cache" / "matplotlib"))

from hiw import runtime  # noqa: E402

runtime.configure()

from hiw.config import load_config  # noqa: E402
from hiw.flows.build import build_plain  # noqa: E402
from hiw.storage import list_versions  # noqa: E402

FPHAB = PROJECT.parent / "shared" / "fixtures" / "pose3d" / "fphab"
WORK = PROJECT / ".cache" / "bench-eval"
HIW = Path(sys.executable).with_name("hiw")
T2M = ("r_precision_top1", "r_precision_top3", "matching_score", "fid", "kid", "diversity", "multimodality")
M2T = ("r_precision_top3", "matching_score", "bleu1", "bleu4", "rouge_l", "cider", "bertscore_f1")


def fphab_dataset(stride: int) -> Path:
    """Every ``stride``-th F-PHAB sequence as one narrated clip, built once (cached under .cache/bench-eval)."""
    out = WORK / f"fphab-every-{stride}"
    if list_versions(out):
        return out
    inputs = WORK / f"fphab-in-every-{stride}"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    rows = []
    for path in sorted(FPHAB.glob("Subject_*/*/*/skeleton.txt"))[::stride]:
        subject, action, number = path.parts[-4:-1]
        track = Path(shutil.copy(path, inputs / f"{subject}_{action}_{number}.txt"))
        frames = sum(1 for line in track.read_text().splitlines() if line.strip())  # F-PHAB is 30 fps
        rows.append(
            {
                "video": track.name,
                "start_s": 0,
                "end_s": round(frames / 30, 3),
                "text": f"the right hand {action.replace('_', ' ')}",
            }
        )
    with open(inputs / "narrations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["video", "start_s", "end_s", "text"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = load_config(
        manifest=inputs / "narrations.csv", out=out, tracker="precomputed", clip_mode="narration", min_clip_s=0.5,
        min_motion_s=0.5, min_both_hands_frac=0, fit_iterations=0,
    )  # fmt: skip
    build_plain(cfg)
    return out


# Runs one command and reports its peak memory: RUSAGE_CHILDREN of this wrapper covers that command alone.
_PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(f'peak_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); sys.exit(code)"
)


def hiw(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """``hiw args`` in a subprocess: its result, wall seconds and peak RSS (MB)."""
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _PEAK, str(HIW), *args], capture_output=True, text=True, timeout=7200)
    if result.returncode:
        sys.exit(f"hiw {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1].removeprefix("peak_kb="))
    return result, time.perf_counter() - began, peak_kb / 1024


def evaluate(name: str, data: list[str], steps: int, metric_args: list[str]) -> dict:
    run = WORK / f"run-{name}"
    shutil.rmtree(run, ignore_errors=True)
    _, train_s, peak_mb = hiw("eval", "train", *data, "--steps", str(steps), "--run", str(run), "--fresh")
    _, score_s, _ = hiw("eval", "baselines", "--run", str(run), *data[2:], *metric_args)
    reports = {p.stem: json.loads(p.read_text()) for p in (run / "eval").glob("*.json")}
    clips = json.loads((run / "run.json").read_text())["data"]["clips"]
    return {"name": name, "train_s": train_s, "peak_mb": peak_mb, "score_s": score_s, "train_clips": clips, "reports": reports}


def _value(report: dict, metric: str, side: str = "metrics") -> str:
    v = report[side].get(metric)
    if v is None or v["mean"] is None:
        return "-"
    return f"{v['mean']:.3f}" if v["interval"] is None else f"{v['mean']:.3f} ± {v['interval']:.3f}"


def print_result(result: dict) -> None:
    reports = result["reports"]
    test = reports["t2m-real-test"]
    print(f"\n## {result['name']}: {result['train_clips']} training clips, {test['pairs']} test clips")
    print(f"evaluator training: {result['train_s']:.1f} s wall (subprocess), peak RSS {result['peak_mb']:.0f} MB")
    print(f"baselines scored in {result['score_s']:.1f} s; settings {json.dumps(test['settings'])}")
    print("\ntext-to-motion | real data | real | shuffled | retrieval")
    print("---|---|---|---|---")
    for metric in T2M:
        row = [_value(test, metric, "real")] + [
            _value(reports[f"t2m-{b}-test"], metric) for b in ("real", "shuffled", "retrieval")
        ]
        print(f"{metric} | " + " | ".join(row))
    print("\nmotion-to-text | real data | shuffled | retrieval")
    print("---|---|---|---")
    for metric in M2T:
        shuffled = reports["m2t-shuffled-test"]
        row = [_value(shuffled, metric, "real")] + [_value(reports[f"m2t-{b}-test"], metric) for b in ("shuffled", "retrieval")]
        print(f"{metric} | " + " | ".join(row))
    real = test["real"]["r_precision_top3"]["mean"]
    chance = reports["t2m-shuffled-test"]["metrics"]["r_precision_top3"]["mean"]
    print(f"\n{result['name']}: real-data R@3 = {real:.3f}; shuffled R@3 = {chance:.3f}; ratio = {real / max(chance, 1e-9):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--fphab-steps", type=int, default=600)
    parser.add_argument("--fphab-stride", type=int, default=1, help="every n-th F-PHAB sequence")
    parser.add_argument("--samples", type=int, default=10, help="generations per prompt (MultiModality)")
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, F-PHAB only: checks that the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.steps, args.fphab_steps, args.fphab_stride, args.samples, args.replications = 360, 10, 10, 20, 2, 2
    WORK.mkdir(parents=True, exist_ok=True)
    common = ["--samples", str(args.samples), "--mm-pairs", str(min(args.samples, 10)), "--replications", str(args.replications)]
    small = (
        ["--diversity-pairs", "30", "--kid-subset-size", "32", "--no-bertscore"] if args.smoke else ["--diversity-pairs", "100"]
    )
    results = []
    # smoke: one dataset is enough to show the script runs (F-PHAB when present: the dataset-root path)
    if not (args.smoke and FPHAB.exists()):
        results.append(evaluate("procedural", ["--data", "procedural", "--clips", str(args.clips)], args.steps, common + small))
    if FPHAB.exists():
        root = fphab_dataset(args.fphab_stride)
        # ~76 test clips: Diversity over 64 pairs, KID over subsets of 64 (the defaults need 300)
        tiny = ["--pool", "4", "--diversity-pairs", "4", "--kid-subset-size", "4", "--no-bertscore"]
        tiny = tiny if args.smoke else ["--diversity-pairs", "64"]
        results.append(evaluate("fphab", ["--data", str(root)], args.fphab_steps, common + tiny))
    else:
        print(f"F-PHAB skipped: {FPHAB} missing (see ../shared/fixtures/FIXTURES.md)")
    for result in results:
        print_result(result)


if __name__ == "__main__":
    main()
