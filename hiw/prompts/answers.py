"""The answers the VLM must give, one pydantic model per prompt.

Each model is the JSON schema sent as structured output (``answer_schema``) and the validator of the
reply. Strings and lists are bounded so that even a poor model's constrained decoding terminates.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Phrase = Annotated[str, StringConstraints(max_length=120)]
Word = Annotated[str, StringConstraints(max_length=32)]
Sentence = Annotated[str, StringConstraints(max_length=400)]
HandRoleName = Literal["active", "supporting", "idle", "not_visible"]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def text(self) -> str:
        """The answer as one line of prose (for the summariser's prompt and agreement checks)."""
        raise NotImplementedError


class ActionObject(Answer):
    """What is being done, and to which objects."""

    action: Phrase = Field(description="the action, as a short verb phrase")
    verbs: list[Word] = Field(max_length=4, description="the action's verbs, base form")
    objects: list[Word] = Field(max_length=6, description="the objects acted on, singular nouns")

    def text(self) -> str:
        return f"{self.action} ({', '.join(self.objects)})" if self.objects else self.action


class HandRole(Answer):
    """What each hand does: the left and the right hand separately."""

    left_role: HandRoleName
    left_action: Phrase = Field(description="what the left hand does; empty when idle or not visible")
    right_role: HandRoleName
    right_action: Phrase = Field(description="what the right hand does; empty when idle or not visible")

    def roles(self) -> dict[str, str]:
        return {"left": self.left_role, "right": self.right_role}

    def text(self) -> str:
        hands = (("left", self.left_role, self.left_action), ("right", self.right_role, self.right_action))
        return "; ".join(
            f"{side} hand {role.replace('_', ' ')}" + (f": {action}" if action else "") for side, role, action in hands
        )


class StateTransition(Answer):
    """How the scene or the object's state changes from the first frame to the last."""

    start_state: Phrase
    end_state: Phrase
    changed: bool

    def text(self) -> str:
        return f"from {self.start_state} to {self.end_state}" if self.changed else f"no change: {self.start_state}"


class ActionIntent(Answer):
    """Why: the goal of the action."""

    intent: Phrase

    def text(self) -> str:
        return self.intent


class CaptionAnswer(Answer):
    """A caption with the verbs and objects it uses (the summariser's and the closed-vocabulary step's answer)."""

    caption: Sentence = Field(description="one or two sentences on what the two hands do")
    verbs: list[Word] = Field(max_length=6)
    objects: list[Word] = Field(max_length=8)

    def text(self) -> str:
        return self.caption


def answer_schema(model: type[Answer]) -> dict:
    """The JSON schema sent for structured output (vLLM and OpenAI accept pydantic's draft 2020-12 output)."""
    return model.model_json_schema()


def closed_schema(verbs: list[str], objects: list[str]) -> dict:
    """CaptionAnswer's schema with verbs and objects restricted to the vocabulary (enforced by constrained decoding)."""
    schema = answer_schema(CaptionAnswer)
    props = schema["properties"]
    props["verbs"]["items"] = {"type": "string", "enum": sorted(verbs)}
    props["objects"]["items"] = {"type": "string", "enum": sorted(objects)}
    return schema
