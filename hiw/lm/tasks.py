"""Task templates (``hiw/lm/templates/*.json``), versioned like the VLM prompts: a declared version plus a hash of
the file, both recorded in every checkpoint, so editing a template changes the model's lineage.

A template set maps a task (``t2m``, ``m2t``, ``h2h``, ``t2t``) to input and output patterns with ``{placeholders}``;
each sample draws one input and one output pattern at random. The patterns are package files (trusted); what
fills them (captions) is data, inserted as plain text, never formatted again.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from hiw.errors import ConfigError
from hiw.schemas.ids import stable_hash

TEMPLATE_SETS = ("pretrain", "instruct")


@dataclass(frozen=True)
class Task:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def fields(self) -> frozenset[str]:
        names = {f for p in self.inputs + self.outputs for _, f, _, _ in string.Formatter().parse(p) if f}
        return frozenset(names)


@dataclass(frozen=True)
class Templates:
    name: str
    version: int
    digest: str
    tasks: dict[str, Task]

    def lineage(self) -> dict:
        return {"name": self.name, "version": self.version, "digest": self.digest}

    def render(self, task: str, rng: np.random.Generator, values: dict[str, str]) -> tuple[str, str]:
        """(input text, output text) of ``task`` with patterns drawn by ``rng``."""
        t = self.tasks[task]
        source, target = t.inputs[rng.integers(len(t.inputs))], t.outputs[rng.integers(len(t.outputs))]
        return source.format_map(values), target.format_map(values)

    def prompt(self, task: str, values: dict[str, str]) -> str:
        """The first input pattern: the one generation prompts with."""
        return self.tasks[task].inputs[0].format_map(values)


@cache
def load_templates(name: str) -> Templates:
    if name not in TEMPLATE_SETS:
        raise ConfigError(f"no template set {name!r} (have {', '.join(TEMPLATE_SETS)})")
    text = resources.files("hiw.lm").joinpath("templates", f"{name}.json").read_text()
    raw = json.loads(text)
    tasks = {k: Task(tuple(v["input"]), tuple(v["output"])) for k, v in raw["tasks"].items()}
    return Templates(name, int(raw["version"]), "t_" + stable_hash(text)[:12], tasks)
