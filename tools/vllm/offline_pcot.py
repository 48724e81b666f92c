"""Run hiw's in-process vLLM backend (``--vlm vllm``) on the tiny model: one clip's PCoT, printed as JSON.

Runs with the vLLM venv's python and the project on PYTHONPATH (tests/annotators/test_vllm_serve.py):
    PYTHONPATH=. .venv-vllm/bin/python tools/vllm/offline_pcot.py MODEL_DIR FRAME.jpg ...
"""

from __future__ import annotations

import asyncio
import json
import sys

from hiw.annotators.pcot import ClipInput, PCoTAnnotator
from hiw.annotators.requests import Sampling
from hiw.annotators.vllm_backend import VLLMBackend
from hiw.motion.facts import HandFacts

# the settings tests/vllm_server.py gives `vllm serve`, as engine arguments (see FINDINGS.md)
ENGINE_ARGS = dict(
    max_model_len=4096,
    max_num_seqs=4,
    enforce_eager=True,
    block_size=32,
    structured_outputs_config={"backend": "guidance", "disable_any_whitespace": True},
)


async def annotate(model_dir: str, frames: list[str]) -> dict:
    facts = (HandFacts("left", 0.9, moving=True, speed_m_s=0.2, directions=("up",)), HandFacts("right", 0.95, grip="grasp"))
    clip = ClipInput("c_offline", "v_offline", "offline.mp4", 4.0, "#C C picks up the plate", facts, tuple(frames))
    annotator = PCoTAnnotator(
        VLLMBackend(model_dir, **ENGINE_ARGS),
        None,
        None,
        Sampling(temperature=0.0, max_tokens=512, seed=0),
        max_active_clips=4,
        invalid_retries=0,
    )
    try:
        out = await annotator.annotate(clip)
    finally:
        await annotator.aclose()
    return {
        "responses": [r.model_dump(mode="json", exclude={"created_at"}) for r in out.responses],
        "captions": [c.model_dump(mode="json", exclude={"created_at"}) for c in out.captions],
    }


if __name__ == "__main__":  # vLLM's engine processes need the guard
    print("HIW-RESULT " + json.dumps(asyncio.run(annotate(sys.argv[1], sys.argv[2:]))))
