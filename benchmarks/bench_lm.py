"""What the CLUTCH language model learns, phase by phase, scored by the evaluation suite (figures in
docs/BENCHMARKS.md), and what it costs to train on this CPU.

Per dataset (procedural clips; F-PHAB built through the pipeline when the fixture is present): a SHIFT tokenizer
and an evaluator trained on the train split, the real / shuffled / retrieval baselines, then the tiny CLUTCH preset:
- run ``aligned``: pretrain P steps, align A steps, instruct I steps;
- run ``continued`` (the ablation, equal total steps): pretrain P + A steps, instruct I steps.
After each phase: ``hiw clutch generate --split test`` scored by ``hiw eval t2m`` and ``hiw clutch caption`` scored
by ``hiw eval m2t``. Targets (issue 17): alignment lowers FID and KID with R@3 not lower, and the tiny model's
T2M R@3 >= 0.8x the real-data R@3 on procedural. Last, training throughput and peak memory of the tiny preset and of
a randomly initialised flan-t5-base-shaped model, each in its own subprocess.

Commands run in this process through the CLI (as the tests do), except the throughput runs.

Run: .venv/bin/python benchmarks/bench_lm.py [--clips 2000] [--pretrain 2000] [--align 500] [--instruct 500]
     [--shift-steps 1500] [--eval-steps 600] [--replications 20] [--datasets procedural,fphab] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

from bench_eval import FPHAB, _value, fphab_dataset, hiw  # noqa: E402  (also configures the runtime)
from typer.testing import CliRunner

from hiw.cli import app

PROJECT = Path(__file__).resolve().parents[1]
WORK = PROJECT / ".cache" / "bench-lm"
RATE = re.compile(r"; ([0-9.]+) clips/s; skipped")


def cli(*args: str) -> str:
    """``hiw args`` in this process; its output (exits on failure)."""
    began = time.perf_counter()
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exit_code:
        sys.exit(f"hiw {' '.join(args)} failed ({result.exit_code}):\n{result.output[-3000:]}")
    print(f"  hiw {' '.join(args[:3])} ... {time.perf_counter() - began:.0f} s", flush=True)
    return result.output


def report(evaluator: Path, task: str, generator: str = "clutch") -> dict:
    return json.loads((evaluator / "eval" / f"{task}-{generator}-test.json").read_text())


class Dataset:
    def __init__(self, name: str, data: list[str], args: argparse.Namespace, pools: list[str], t2m: list[str], work: Path):
        self.name, self.data, self.args, self.pools, self.t2m = name, data, args, pools, t2m  # scoring options
        self.work = work / name
        self.shift, self.evaluator = self.work / "shift", self.work / "evaluator"
        self.rows: dict[str, tuple[dict, dict]] = {}  # label -> (t2m report, m2t report)
        self.seconds: dict[str, float] = {}
        self.rates: dict[str, float] = {}

    def prepare(self) -> None:
        if not self.args.reuse:
            shutil.rmtree(self.work, ignore_errors=True)
        cli("shift", "train", *self.data, "--steps", str(self.args.shift_steps), "--run", str(self.shift))
        cli("eval", "train", *self.data, "--steps", str(self.args.eval_steps), "--run", str(self.evaluator))
        cli("eval", "baselines", "--run", str(self.evaluator), *self.data[2:], *self.pools, *self.t2m, "--no-bertscore")
        self.baselines = {
            f"{task}-{name}": report(self.evaluator, task, name)
            for task in ("t2m", "m2t")
            for name in ("real", "shuffled", "retrieval")
            if (self.evaluator / "eval" / f"{task}-{name}-test.json").is_file()
        }

    def train(self, run: Path, stage: str, steps: int) -> None:
        began = time.perf_counter()
        batch = ["--batch", str(self.args.batch)] if self.args.batch else []
        out = cli(
            "clutch",
            "train",
            "--stage",
            stage,
            "--shift",
            str(self.shift),
            *self.data,
            "--steps",
            str(steps),
            *batch,
            "--run",
            str(run),
        )
        self.seconds[f"{run.name}/{stage}"] = time.perf_counter() - began
        if match := RATE.search(out):
            self.rates[stage] = float(match.group(1))

    def score(self, label: str, phase: Path) -> None:
        generations, captions = phase / "generations.parquet", phase / "captions.parquet"
        cli("clutch", "generate", "--run", str(phase), "--split", "test", "--out", str(generations))
        cli(
            "eval", "t2m", "--run", str(self.evaluator), *self.data[2:], "--generations", str(generations), *self.pools, *self.t2m
        )
        t2m = report(self.evaluator, "t2m")
        out = cli("clutch", "caption", "--run", str(phase), "--split", "test", "--out", str(captions))
        m2t = None
        if "wrote 0 captions" not in out:  # an undertrained model may say nothing at all: its row shows "-"
            cli(
                "eval",
                "m2t",
                "--run",
                str(self.evaluator),
                *self.data[2:],
                "--captions",
                str(captions),
                *self.pools,
                "--no-bertscore",
            )
            m2t = report(self.evaluator, "m2t")
        self.rows[label] = (t2m, m2t)

    def run(self) -> None:
        a = self.args
        print(f"\n# {self.name}", flush=True)
        self.prepare()
        aligned, continued = self.work / "aligned", self.work / "continued"
        self.train(aligned, "pretrain", a.pretrain)
        if not continued.exists():
            shutil.copytree(aligned, continued)
        self.score(f"stage 1 ({a.pretrain})", aligned / "pretrain")
        self.train(aligned, "align", a.align)
        self.score(f"stage 2 ({a.pretrain}+{a.align} align)", aligned / "align")
        self.train(aligned, "instruct", a.instruct)
        self.score(f"stage 3 ({a.pretrain}+{a.align}+{a.instruct})", aligned / "instruct")
        self.train(continued, "pretrain", a.pretrain + a.align)
        self.score(f"stage 1 continued ({a.pretrain + a.align})", continued / "pretrain")
        self.train(continued, "instruct", a.instruct)
        self.score(f"stage 3, no align ({a.pretrain + a.align}+{a.instruct})", continued / "instruct")

    def print(self) -> None:
        base = self.baselines
        test = base["t2m-real"]
        print(f"\n## {self.name}: {test['pairs']} test clips; settings {json.dumps(test['settings'])}")
        print("training wall (s): " + ", ".join(f"{k} {v:.0f}" for k, v in self.seconds.items()))
        print("\ntext-to-motion | " + " | ".join(["real data", "real", "shuffled", "retrieval", *self.rows]))
        print("---|" * (5 + len(self.rows)))
        for metric in ("r_precision_top3", "matching_score", "fid", "kid", "diversity"):
            cells = [_value(test, metric, "real")] + [_value(base[f"t2m-{b}"], metric) for b in ("real", "shuffled", "retrieval")]
            print(f"{metric} | " + " | ".join(cells + [_value(t2m, metric) for t2m, _ in self.rows.values()]))
        print("\nmotion-to-text | " + " | ".join(["real data", "shuffled", "retrieval", *self.rows]))
        print("---|" * (4 + len(self.rows)))
        m2t_real = base["m2t-shuffled"]
        for metric in ("r_precision_top3", "matching_score", "bleu4", "rouge_l"):
            cells = [_value(m2t_real, metric, "real")] + [_value(base[f"m2t-{b}"], metric) for b in ("shuffled", "retrieval")]
            print(f"{metric} | " + " | ".join(cells + [_value(m2t, metric) if m2t else "-" for _, m2t in self.rows.values()]))
        labels = list(self.rows)
        real = test["real"]["r_precision_top3"]["mean"]
        final = self.rows[labels[2]][0]["metrics"]["r_precision_top3"]["mean"]
        print(f"\n{self.name}: stage-3 T2M R@3 {final:.3f} = {final / real:.2f}x the real data's {real:.3f} (target >= 0.8x)")
        (aligned, _), (continued, _) = self.rows[labels[1]], self.rows[labels[3]]
        print(
            f"{self.name}: alignment ablation at equal steps (align vs pretrain continued): "
            + ", ".join(
                f"{m} {aligned['metrics'][m]['mean']:.3f} vs {continued['metrics'][m]['mean']:.3f}"
                for m in ("r_precision_top3", "fid", "kid")
            )
        )


def throughput(shift: Path, data: list[str], presets: list[str], steps: int, work: Path) -> None:
    """clips/s and peak RSS of ``steps`` pretraining steps (batch 8) per preset, each in its own subprocess."""
    print("\n## training throughput on this CPU (pretrain, batch 8, one subprocess each)")
    print("preset | parameters | clips/s | wall (s) | peak RSS (MB)\n---|---:|---:|---:|---:")
    for preset in presets:
        run = work / f"throughput-{preset}"
        shutil.rmtree(run, ignore_errors=True)
        args = ["clutch", "train", "--stage", "pretrain", "--preset", preset, "--shift", str(shift), *data]
        result, wall, peak = hiw(*args, "--steps", str(steps), "--batch", "8", "--val-every", "0", "--run", str(run))
        rate = RATE.search(result.stdout).group(1)
        params = json.loads((run / "run.json").read_text())["t5"]
        size = _parameters(params)
        print(f"{preset} | {size / 1e6:.1f} M | {rate} | {wall:.0f} | {peak:.0f}")
        shutil.rmtree(run, ignore_errors=True)  # the base-shaped folder is ~1 GB


def _parameters(t5: dict) -> int:
    """T5 parameter count from its config: embeddings (transformers 5 ties the output layer to them), attention,
    gated FFN; layer norms left out. The trained tokenizer's small vocabulary makes ``base`` ~50 M below flan-t5-base."""
    d, ff, inner, vocab = t5["d_model"], t5["d_ff"], t5["num_heads"] * t5["d_kv"], t5["vocab_size"]
    attention, ffn = 4 * d * inner, 3 * d * ff
    encoder = t5["num_layers"] * (attention + ffn)
    decoder = t5["num_decoder_layers"] * (2 * attention + ffn)
    return vocab * d + encoder + decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--shift-steps", type=int, default=1500)
    parser.add_argument("--eval-steps", type=int, default=600)
    parser.add_argument("--pretrain", type=int, default=2000)
    parser.add_argument("--align", type=int, default=500)
    parser.add_argument("--instruct", type=int, default=500)
    parser.add_argument("--batch", type=int, help="CLUTCH batch (default: the tiny preset's 32)")
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--throughput-steps", type=int, default=5, help="0 skips the throughput runs")
    parser.add_argument("--datasets", default="procedural,fphab", help="comma-separated: procedural, fphab")
    parser.add_argument("--reuse", action="store_true", help="keep earlier runs: each command resumes where it stopped")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, procedural only, no base-shaped model")
    args = parser.parse_args()
    pools, t2m = ["--replications", str(args.replications)], ["--diversity-pairs", "100"]
    if args.smoke:
        args.clips, args.shift_steps, args.eval_steps, args.pretrain, args.align, args.instruct = 200, 20, 10, 60, 4, 4
        args.batch, args.throughput_steps, args.datasets = 8, 2, "procedural"
        pools, t2m = ["--pool", "8", "--replications", "2"], ["--diversity-pairs", "10", "--kid-subset-size", "8"]
    work = WORK / "smoke" if args.smoke else WORK  # a smoke run (the test suite's) never overwrites a real one's runs
    names, datasets = args.datasets.split(","), []
    if "procedural" in names:
        datasets.append(Dataset("procedural", ["--data", "procedural", "--clips", str(args.clips)], args, pools, t2m, work))
    if "fphab" in names and not FPHAB.exists():
        print(f"F-PHAB skipped: {FPHAB} missing (see ../shared/fixtures/FIXTURES.md)")
    elif "fphab" in names:  # ~76 test clips: Diversity over 64 pairs (bench_eval's setting)
        datasets.append(Dataset("fphab", ["--data", str(fphab_dataset(1))], args, pools, ["--diversity-pairs", "64"], work))
    work.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        dataset.run()
        dataset.print()
    first = datasets[0]
    if args.throughput_steps:
        throughput(first.shift, first.data, ["tiny"] if args.smoke else ["tiny", "base"], args.throughput_steps, work)
    if args.smoke:
        print("base-shaped throughput not run in --smoke (a 250M-parameter model)")


if __name__ == "__main__":
    main()
