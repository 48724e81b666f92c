"""In-process vLLM (``vllm.LLM(...).chat``) for GPU machines where vllm is installed.

Requests that arrive while the engine is busy are gathered and sent as one ``chat`` batch, which is how
offline vLLM reaches its throughput; the answer schema becomes ``StructuredOutputsParams(json=...)``.
vllm is imported on first use, so the rest of hiw never needs it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hiw.annotators.requests import BackendError, Reply, VLMRequest
from hiw.errors import ConfigError


def _import_vllm():
    try:
        import vllm
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError as err:
        raise ConfigError(
            f"--vlm vllm needs the vllm package in this environment ({err}); install vllm on a GPU machine, "
            "or serve the model with `vllm serve` and use --vlm openai --vlm-url http://HOST:PORT/v1"
        ) from None
    return vllm, StructuredOutputsParams


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, max_batch: int = 256, **engine_args: Any):
        self.model = model
        self.max_batch = max_batch
        self._engine_args = engine_args
        self._llm = None
        self._pending: list[tuple[VLMRequest, asyncio.Future]] = []
        self._flushing: asyncio.Task | None = None

    def _engine(self):
        if self._llm is None:
            vllm, _ = _import_vllm()
            self._llm = vllm.LLM(model=self.model, **self._engine_args)
        return self._llm

    def params(self, request: VLMRequest):
        vllm, structured = _import_vllm()
        s = request.sampling
        return vllm.SamplingParams(
            temperature=s.temperature, max_tokens=s.max_tokens, seed=s.seed, structured_outputs=structured(json=request.schema)
        )

    async def complete(self, request: VLMRequest) -> Reply:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let every coroutine that is ready add its request first
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            started = time.perf_counter()
            try:
                outputs = await asyncio.to_thread(self._run, [r for r, _ in batch])
            except Exception as err:  # noqa: BLE001 - the engine's failure fails this batch's calls, not the build
                for _, future in batch:
                    future.set_exception(BackendError("error", f"{type(err).__name__}: {err}", 1, time.perf_counter() - started))
                continue
            latency = time.perf_counter() - started
            for (_, future), out in zip(batch, outputs, strict=True):
                done = out.outputs[0]
                future.set_result(
                    Reply(
                        text=done.text,
                        latency_s=latency,
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(done.token_ids),
                        finish_reason=done.finish_reason,
                    )
                )

    def _run(self, requests: list[VLMRequest]):
        return self._engine().chat(
            [r.messages() for r in requests], sampling_params=[self.params(r) for r in requests], use_tqdm=False
        )

    async def aclose(self) -> None:
        self._llm = None
