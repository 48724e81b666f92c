"""Caption annotators: the offline kinematic captioner (the default), and the VLM path: backends for
OpenAI-compatible servers such as `vllm serve` and for in-process vLLM, parallel chain-of-thought per
clip, the closed vocabulary and caption QA (see docs/ARCHITECTURE.md, "VLM annotation")."""

from hiw.annotators.kinematic import KINEMATIC_MODEL, caption_clip

__all__ = ["KINEMATIC_MODEL", "caption_clip"]
