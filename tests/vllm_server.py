"""Start a real `vllm serve` (CPU build, separate venv) on the tiny random VLM, for tests and benchmarks.

This is a helper module, not a test file (tests/ is on sys.path under pytest, as for conftest).
`make vllm-venv tiny-vlm` sets up what it needs; start one server per session (about 25 s):

    from vllm_server import MODEL, serve_tiny_vlm, vllm_available

    @pytest.fixture(scope="session")
    def vllm_url():
        reason = vllm_available()
        if reason:
            pytest.skip(reason)
        with serve_tiny_vlm() as base_url:  # "http://127.0.0.1:PORT/v1"
            yield base_url

    httpx.post(f"{vllm_url}/chat/completions", json={"model": MODEL, "messages": [...]})

The model is an Idefics3 (SmolVLM-style) VLM with random weights built by
tools/vllm/make_tiny_model.py; see tools/vllm/FINDINGS.md for what it can and cannot do.
The server settings (SERVE_ARGS) make JSON-schema constrained replies from the random weights valid
and short; give strings maxLength and arrays maxItems so they also end within max_tokens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CACHE = PROJECT / ".cache"
VENV = PROJECT / ".venv-vllm"
VLLM_BIN = VENV / "bin" / "vllm"
VLLM_PYTHON = VENV / "bin" / "python"
MODEL_DIR = CACHE / "vllm" / "tiny-vlm"
MAKE_MODEL = PROJECT / "tools" / "vllm" / "make_tiny_model.py"
LOG_DIR = CACHE / "vllm" / "logs"

MODEL = "tiny-vlm"  # --served-model-name
STARTUP_TIMEOUT_S = 180.0

# Small engine for a 2-core CPU machine (tools/vllm/FINDINGS.md has the measurements):
# - --enforce-eager: no torch.compile warm-up; engine start about 25 s instead of 45 s.
# - prefix caching is on by default (also on CPU and for this multimodal model); it is named here so
#   tests do not depend on the default. CPU blocks are 128 tokens by default (multiples of 32 only);
#   32-token blocks let shared prefixes (the images in front of the question) be reused more finely.
# - structured outputs: the guidance backend with disable_any_whitespace. xgrammar 0.2.8 lets raw
#   control characters into JSON strings (invalid JSON from a random model), and with any whitespace
#   allowed a random model pads replies with \r\t up to max_tokens. disable_any_whitespace needs an
#   explicit xgrammar|guidance backend and is a server setting (the per-request field is ignored).
# - --enable-prompt-tokens-details: usage.prompt_tokens_details.cached_tokens in every reply.
SERVE_ARGS: tuple[str, ...] = (
    "--served-model-name",
    MODEL,
    "--max-model-len",
    "4096",
    "--max-num-seqs",
    "4",
    "--enforce-eager",
    "--enable-prefix-caching",
    "--block-size",
    "32",
    "--structured-outputs-config",
    '{"backend": "guidance", "disable_any_whitespace": true}',
    "--enable-prompt-tokens-details",
)


def vllm_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the vLLM venv's processes: caches inside the project, offline, no telemetry."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "HF_HOME": str(CACHE / "huggingface"),
            "XDG_CACHE_HOME": str(CACHE),
            "VLLM_CACHE_ROOT": str(CACHE / "vllm" / "root"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            # KV cache in GiB (the tiny model needs far less; the default would take much more)
            "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The project venv's variables must not leak into the vLLM venv's interpreter.
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    return env


def build_model(timeout: float = 300.0) -> Path:
    """Build the tiny model dir with the vLLM venv's python (a no-op when it is up to date)."""
    proc = subprocess.run(
        [str(VLLM_PYTHON), str(MAKE_MODEL), "--out", str(MODEL_DIR)],
        check=False,
        cwd=PROJECT,
        env=vllm_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"make_tiny_model.py failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return MODEL_DIR


def vllm_available(build: bool = True) -> str | None:
    """None when `serve_tiny_vlm` can run, else a skip reason.

    With build=True a missing (or outdated) model dir is built on demand (about 5 s).
    """
    if not VLLM_BIN.exists() or not VLLM_PYTHON.exists():
        return f"{VLLM_BIN} missing: run `make vllm-venv tiny-vlm`"
    if build:
        try:
            build_model()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            return f"could not build the tiny model: {exc}"
    elif not (MODEL_DIR / "config.json").exists():
        return f"{MODEL_DIR} missing: run `make tiny-vlm`"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    # pip/index noise aside, the end of the log says why the server died
    return "\n".join(lines[-n:])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the server's process group (API server + engine core), then SIGKILL stragglers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # the engine core may outlive the API server: kill whatever is left in the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def serve_tiny_vlm(
    port: int | None = None,
    *,
    extra_args: Sequence[str] = (),
    timeout: float = STARTUP_TIMEOUT_S,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Run `vllm serve` on the tiny model; yield its OpenAI base URL `http://127.0.0.1:PORT/v1`.

    The server's output goes to `log_path` (default .cache/vllm/logs/serve-PORT.log). Raises
    RuntimeError with the log tail when the server exits early or is not healthy within `timeout`.
    The whole process group is terminated on exit.
    """
    reason = vllm_available()
    if reason:
        raise RuntimeError(reason)
    port = port or free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = log_path or LOG_DIR / f"serve-{port}.log"
    cmd = [
        str(VLLM_BIN),
        "serve",
        str(MODEL_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *SERVE_ARGS,
        *extra_args,
    ]
    root = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT,
            env=vllm_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: _stop() reaches the engine core too
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vllm serve exited with {proc.returncode} before it was healthy; log {log_path}:\n{_log_tail(log_path)}"
                )
            if _healthy(root + "/health"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm serve not healthy after {timeout:.0f} s; log {log_path}:\n{_log_tail(log_path)}")
            time.sleep(1.0)
        yield root + "/v1"
    finally:
        _stop(proc)


if __name__ == "__main__":  # manual use: python tests/vllm_server.py  (serves until Ctrl-C)
    why = vllm_available()
    if why:
        sys.exit(why)
    with serve_tiny_vlm(int(sys.argv[1]) if len(sys.argv) > 1 else None) as url:
        print(f"serving {MODEL} at {url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


def prefix_cache_counters(base_url: str) -> tuple[float, float]:
    """(prefix-cache queries, hits) in prompt tokens so far, from the server's Prometheus /metrics."""
    import re

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=10) as response:
        text = response.read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^vllm:{name}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.M))

    return total("prefix_cache_queries_total"), total("prefix_cache_hits_total")
