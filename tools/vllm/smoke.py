"""Smoke checks against a `vllm serve` of the tiny random VLM (OpenAI-compatible API).

    .venv/bin/python tools/vllm/smoke.py                      # starts the server itself (tests/vllm_server.py)
    .venv/bin/python tools/vllm/smoke.py --base-url http://127.0.0.1:8000/v1   # an already running server

Needs httpx and PIL or opencv (the project's .venv has them). Checks:
  a. structured output: OpenAI `response_format` json_schema (strict) and vLLM's `structured_outputs`
     extra field, at temperature 0 and 1: every reply must be schema-valid JSON ending with
     finish_reason "stop" within max_tokens.
  b. images: user content [image_url x4 (base64 JPEG data URLs), text] is accepted; prefix-cache hit
     rates (Prometheus /metrics) for 4 questions about 4 images, images first vs question first.
  c. usage token counts and latency per request.
Prints a report and exits non-zero when a check fails; --json writes the measurements.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-vlm"
MAX_TOKENS = 256

SCHEMA = {
    "type": "object",
    "properties": {
        "verb": {"type": "string", "maxLength": 40},
        "objects": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 4},
        "left_hand": {"type": "string", "enum": ["holds", "moves", "idle", "absent"]},
    },
    "required": ["verb", "objects", "left_hand"],
    "additionalProperties": False,
}

PROMPTS = [
    "Describe the action in this clip as JSON.",
    "What is the left hand doing? Answer with the schema.",
    "Name the main verb and the objects that are touched.",
    "The right hand pours water into the cup. Summarise as JSON.",
    "Which objects are on the table? Fill in the fields.",
    "Is the left hand holding anything?",
    "Return the action label for the kitchen clip.",
    "Summarise the hand motion in one short JSON object.",
]

QUESTIONS = [
    "What is the left hand doing in these frames?",
    "Which objects does the right hand touch?",
    "Name the main verb of the action shown.",
    "Is any hand idle? Answer briefly.",
]


# --------------------------------------------------------------------------------------------
def _validate(obj: object, schema: dict = SCHEMA) -> list[str]:
    """Errors of obj against SCHEMA (jsonschema when installed, else a check of this schema)."""
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
    errors = []
    if not isinstance(obj, dict):
        return ["not an object"]
    props = schema["properties"]
    errors += [f"missing {k}" for k in schema["required"] if k not in obj]
    errors += [f"extra {k}" for k in obj if k not in props]
    if not isinstance(obj.get("verb"), str) or len(obj["verb"]) > 40:
        errors.append("verb")
    objs = obj.get("objects")
    if not isinstance(objs, list) or len(objs) > 4 or not all(isinstance(o, str) and len(o) <= 30 for o in objs):
        errors.append("objects")
    if obj.get("left_hand") not in props["left_hand"]["enum"]:
        errors.append("left_hand")
    return errors


def _jpeg_data_url(seed: int, size: tuple[int, int] = (640, 480)) -> str:
    """A synthetic 640x480 'kitchen' frame (random boxes and circles) as a base64 JPEG data URL."""
    rng = random.Random(seed)
    w, h = size
    try:
        from PIL import Image, ImageDraw

        img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = rng.randrange(w), rng.randrange(h)
            box = [x0, y0, x0 + rng.randrange(20, 200), y0 + rng.randrange(20, 200)]
            color = tuple(rng.randrange(256) for _ in range(3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
    except ImportError:
        import cv2
        import numpy as np

        img = np.full((h, w, 3), [rng.randrange(256) for _ in range(3)], np.uint8)
        for _ in range(12):
            x0, y0 = rng.randrange(w), rng.randrange(h)
            color = [rng.randrange(256) for _ in range(3)]
            cv2.rectangle(img, (x0, y0), (x0 + rng.randrange(20, 200), y0 + rng.randrange(20, 200)), color, -1)
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        data = enc.tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _metrics(client: httpx.Client, root: str) -> dict[str, float]:
    """Prometheus counters of /metrics, summed over label sets, by name."""
    out: dict[str, float] = {}
    for line in client.get(root + "/metrics").text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
    return out


class Smoke:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.root = self.base.removesuffix("/v1")
        self.client = httpx.Client(timeout=120)
        self.requests: list[dict] = []
        self.failures: list[str] = []
        self.report: dict = {}

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
            print(f"  FAIL {what}")
        return ok

    def chat(self, tag: str, messages: list, **body) -> dict:
        payload = {"model": MODEL, "messages": messages, **body}
        t0 = time.perf_counter()
        resp = self.client.post(self.base + "/chat/completions", json=payload)
        dt = time.perf_counter() - t0
        if resp.status_code != 200:
            self.check(False, f"{tag}: HTTP {resp.status_code} {resp.text[:300]}")
            return {}
        data = resp.json()
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        self.requests.append(
            {
                "tag": tag,
                "latency_s": round(dt, 4),
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
                "cached_tokens": details.get("cached_tokens"),
                "finish_reason": data["choices"][0].get("finish_reason"),
            }
        )
        self.check(
            isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int),
            f"{tag}: usage token counts missing: {usage}",
        )
        return data

    # ---- checks ---------------------------------------------------------------------------
    def models(self) -> None:
        print("== /v1/models")
        data = self.client.get(self.base + "/models").json()
        ids = [m["id"] for m in data.get("data", [])]
        self.check(MODEL in ids, f"/v1/models lists {ids}, not {MODEL}")
        self.report["max_model_len"] = next((m.get("max_model_len") for m in data["data"] if m["id"] == MODEL), None)
        print(f"  models {ids}, max_model_len {self.report['max_model_len']}")

    def structured(self) -> None:
        print("== a. structured output")
        forms = {
            "response_format": lambda: {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
                }
            },
            "structured_outputs": lambda: {"structured_outputs": {"json": SCHEMA}},
        }
        results = {}
        for form, body in forms.items():
            for temperature in (0.0, 1.0):
                ok = 0
                lengths = []
                for i, prompt in enumerate(PROMPTS):
                    tag = f"json/{form}/t{temperature:g}/{i}"
                    data = self.chat(
                        tag,
                        [{"role": "user", "content": prompt}],
                        max_tokens=MAX_TOKENS,
                        temperature=temperature,
                        seed=i,
                        **body(),
                    )
                    if not data:
                        continue
                    choice = data["choices"][0]
                    text = choice["message"]["content"] or ""
                    lengths.append(data["usage"]["completion_tokens"])
                    try:
                        obj = json.loads(text)
                    except ValueError as exc:
                        self.check(False, f"{tag}: not JSON ({exc}): {text[:200]!r}")
                        continue
                    errors = _validate(obj)
                    if not self.check(not errors, f"{tag}: schema errors {errors}: {text[:200]!r}"):
                        continue
                    if not self.check(choice["finish_reason"] == "stop", f"{tag}: finish_reason {choice['finish_reason']}"):
                        continue
                    ok += 1
                    if i == 0:
                        print(f"  {form} t={temperature:g} example: {text}")
                key = f"{form}/t{temperature:g}"
                results[key] = {
                    "valid": ok,
                    "of": len(PROMPTS),
                    "completion_tokens_max": max(lengths, default=None),
                    "completion_tokens_median": statistics.median(lengths) if lengths else None,
                }
                print(f"  {key}: {ok}/{len(PROMPTS)} schema-valid, completion tokens max {results[key]['completion_tokens_max']}")
        self.report["structured"] = results

    def images(self) -> None:
        print("== b. images + prefix cache")
        # a single image first: is the multimodal request form accepted?
        data = self.chat(
            "image/1",
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": _jpeg_data_url(99)}},
                        {"type": "text", "text": "What is in the image?"},
                    ],
                }
            ],
            max_tokens=16,
            temperature=0,
        )
        if data:
            print(f"  1 image accepted: prompt_tokens {data['usage']['prompt_tokens']}")
        phases = {}
        for phase, seed0 in (("images_first", 0), ("question_first", 100)):
            # fresh images per phase, so neither phase profits from the other's cache
            urls = [_jpeg_data_url(seed0 + k) for k in range(4)]
            parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
            before = _metrics(self.client, self.root)
            cached = []
            for q_i, question in enumerate(QUESTIONS):
                text = [{"type": "text", "text": question}]
                content = parts + text if phase == "images_first" else text + parts
                data = self.chat(f"{phase}/{q_i}", [{"role": "user", "content": content}], max_tokens=8, temperature=0)
                if data:
                    cached.append(self.requests[-1]["cached_tokens"])
            after = _metrics(self.client, self.root)

            def delta(name: str, before=before, after=after) -> float:
                return after.get(name, 0.0) - before.get(name, 0.0)

            queries, hits = delta("vllm:prefix_cache_queries_total"), delta("vllm:prefix_cache_hits_total")
            mm_q, mm_h = delta("vllm:mm_cache_queries_total"), delta("vllm:mm_cache_hits_total")
            prompt_tokens = [r["prompt_tokens"] for r in self.requests[-len(QUESTIONS) :]]
            phases[phase] = {
                "prefix_cache_queries": queries,
                "prefix_cache_hits": hits,
                "prefix_hit_rate": round(hits / queries, 3) if queries else None,
                "mm_cache_queries": mm_q,
                "mm_cache_hits": mm_h,
                "prompt_tokens": prompt_tokens,
                "cached_tokens_per_request": cached,
            }
            print(
                f"  {phase}: prefix cache hits {hits:.0f}/{queries:.0f} tokens "
                f"({phases[phase]['prefix_hit_rate']}), cached per request {cached}, "
                f"prompt tokens {prompt_tokens}, mm cache hits {mm_h:.0f}/{mm_q:.0f}"
            )
        self.report["prefix_cache"] = phases

        # the annotation shape: 4 frames, then the question, JSON schema reply
        urls = [_jpeg_data_url(200 + k) for k in range(4)]
        content = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
        content.append({"type": "text", "text": "Label the hand action in these frames."})
        data = self.chat(
            "images+json/0",
            [{"role": "user", "content": content}],
            max_tokens=MAX_TOKENS,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}},
        )
        if data:
            text = data["choices"][0]["message"]["content"] or ""
            try:
                errors = _validate(json.loads(text))
            except ValueError as exc:
                errors = [str(exc)]
            self.check(not errors and data["choices"][0]["finish_reason"] == "stop", f"images+json: {errors} {text[:200]!r}")
            print(f"  4 images + json_schema: {text}")
        first = phases["images_first"]["prefix_hit_rate"] or 0.0
        second = phases["question_first"]["prefix_hit_rate"] or 0.0
        self.check(first > second, f"images-first hit rate {first} should beat question-first {second}")

    def summary(self) -> None:
        print("== c. latency and usage")
        by_kind: dict[str, list[dict]] = {}
        for r in self.requests:
            by_kind.setdefault(r["tag"].rsplit("/", 1)[0], []).append(r)
        table = {}
        for kind, rows in by_kind.items():
            lat = [r["latency_s"] for r in rows]
            table[kind] = {
                "n": len(rows),
                "latency_median_s": round(statistics.median(lat), 3),
                "latency_max_s": round(max(lat), 3),
                "prompt_tokens_median": statistics.median([r["prompt_tokens"] or 0 for r in rows]),
                "completion_tokens_median": statistics.median([r["completion_tokens"] or 0 for r in rows]),
            }
            t = table[kind]
            print(
                f"  {kind:32s} n={t['n']:2d} latency median {t['latency_median_s']:.3f} s max {t['latency_max_s']:.3f} s "
                f"prompt {t['prompt_tokens_median']:.0f} completion {t['completion_tokens_median']:.0f} tokens"
            )
        self.report["latency"] = table
        self.report["requests"] = self.requests


def _serve():
    """The tests' helper (tests/vllm_server.py), imported by path: it starts the server."""
    spec = importlib.util.spec_from_file_location("vllm_server", ROOT / "tests" / "vllm_server.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    reason = mod.vllm_available()
    if reason:
        sys.exit(f"cannot start vllm: {reason}")
    return mod.serve_tiny_vlm()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="OpenAI base URL of a running server (default: start one)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if not base_url:
            t0 = time.perf_counter()
            base_url = stack.enter_context(_serve())
            print(f"server healthy after {time.perf_counter() - t0:.1f} s at {base_url}")
        smoke = Smoke(base_url)
        smoke.models()
        smoke.structured()
        smoke.images()
        smoke.summary()
        smoke.report["failures"] = smoke.failures
    if args.json:
        args.json.write_text(json.dumps(smoke.report, indent=2) + "\n")
    print(f"{len(smoke.failures)} failed checks" if smoke.failures else "all checks passed")
    return 1 if smoke.failures else 0


if __name__ == "__main__":
    sys.exit(main())
