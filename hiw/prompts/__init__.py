"""Versioned prompt templates (jinja2, in templates/), each paired with the schema its answer must satisfy.

A prompt's ``version`` is its declared version plus a hash of its template text and answer schema, so an
edited template can never hide behind an old version: the version is part of every response-cache key
and of each caption's and response's lineage. The system text and the clip context are shared by all
prompts of a clip and go first, so the four PCoT questions share one prefix (vLLM prefix caching).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

import jinja2

from hiw.prompts.answers import ActionIntent, ActionObject, Answer, CaptionAnswer, HandRole, StateTransition, answer_schema
from hiw.schemas.ids import stable_hash

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files(__package__).joinpath("templates", name).read_text()),
    undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
    keep_trailing_newline=False,
    autoescape=False,
)


@dataclass(frozen=True)
class Prompt:
    name: str
    declared: str  # bump by hand when the meaning changes; the hash catches every edit anyway
    answer: type[Answer]

    @cached_property
    def source(self) -> str:
        return _ENV.loader.get_source(_ENV, f"{self.name}.j2")[0]

    @cached_property
    def version(self) -> str:
        return f"{self.declared}+{stable_hash(self.source, answer_schema(self.answer), _shared_source(), length=8)}"

    def render(self, **context: Any) -> str:
        return _ENV.get_template(f"{self.name}.j2").render(**context).strip()


def _shared_source() -> str:
    return "".join(_ENV.loader.get_source(_ENV, f"{name}.j2")[0] for name in ("system", "context"))


def render_shared(**context: Any) -> tuple[str, str]:
    """(system text, clip context text): the prefix every prompt of one clip shares."""
    return _ENV.get_template("system.j2").render(**context).strip(), _ENV.get_template("context.j2").render(**context).strip()


PCOT = (
    Prompt("action_object", "v1", ActionObject),
    Prompt("hand_role", "v1", HandRole),
    Prompt("state_transition", "v1", StateTransition),
    Prompt("action_intent", "v1", ActionIntent),
)
SUMMARISE = Prompt("summarise", "v1", CaptionAnswer)
CLOSED_VOCAB = Prompt("closed_vocab", "v1", CaptionAnswer)
PROMPTS = {p.name: p for p in (*PCOT, SUMMARISE, CLOSED_VOCAB)}

__all__ = ["CLOSED_VOCAB", "PCOT", "PROMPTS", "SUMMARISE", "Prompt", "render_shared"]
