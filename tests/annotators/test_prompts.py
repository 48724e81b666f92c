"""Prompt templates and their versions."""

from __future__ import annotations

import jinja2
import pytest

from hiw.prompts import CLOSED_VOCAB, PCOT, PROMPTS, SUMMARISE, Prompt, render_shared
from hiw.prompts.answers import CaptionAnswer, closed_schema


def test_versions_are_declared_plus_content_hash_and_an_edit_changes_them():
    versions = [p.version for p in PROMPTS.values()]
    assert all(v.startswith("v1+") and len(v) == 11 for v in versions) and len(set(versions)) == len(versions)
    edited = Prompt("hand_role", "v1", PROMPTS["hand_role"].answer)
    edited.__dict__["source"] = edited.source + " Be brief."  # what a template edit does
    assert edited.version != PROMPTS["hand_role"].version


def test_templates_render_and_refuse_missing_values():
    system, context = render_shared(
        n_frames=8, duration_s="4.0", clip_id="c_1", narration="#C C cuts the onion", facts=["a", "b"]
    )
    assert "8 frames" in system and '"#C C cuts the onion"' in context and "- a\n- b" in context
    assert "no frames" in render_shared(n_frames=0, duration_s="4.0", clip_id="c_1", narration=None, facts=[])[0]
    assert all(p.render() for p in PCOT)
    answers = dict.fromkeys(["action_object", "hand_role", "state_transition", "action_intent"], "x")
    assert "hand roles: x" in SUMMARISE.render(answers=answers)
    text = CLOSED_VOCAB.render(summary="s", answers=answers, verbs=["cut", "hold"], objects=["onion"])
    assert "cut, hold" in text and "onion" in text
    with pytest.raises(jinja2.UndefinedError):  # a missing value is a bug, not an empty string
        SUMMARISE.render()


def test_closed_schema_restricts_words_and_keeps_the_bounds():
    schema = closed_schema(["hold", "cut"], ["onion"])
    assert schema["properties"]["verbs"]["items"] == {"type": "string", "enum": ["cut", "hold"]}
    assert schema["properties"]["caption"]["maxLength"] == 400 and schema["additionalProperties"] is False
    assert CaptionAnswer.model_validate({"caption": "c", "verbs": ["cut"], "objects": []}).text() == "c"
