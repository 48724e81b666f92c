"""The offline kinematic captioner: states only what the hand tracks show.

It knows nothing of objects or scenes; its captions say so ("kinematic description"), and its
model name marks them as such in the ``captions`` table. A narration, when the source has one,
becomes its own caption of kind ``narration``.
"""

from __future__ import annotations

import re

from hiw.motion.facts import HandFacts
from hiw.schemas import Caption, ClipSpec
from hiw.schemas.ids import caption_id

KINEMATIC_MODEL = "hiw-kinematic-v1"
_GRIP_WORDS = {
    "grasp": ("closes as if grasping", ["grasp"]),
    "release": ("opens as if releasing", ["release"]),
    "grasp_release": ("closes and then opens again (grasp, then release)", ["grasp", "release"]),
    "release_grasp": ("opens and then closes again (release, then grasp)", ["release", "grasp"]),
}
# Ego4D narrations: "#C C cuts the onion" -> "C cuts the onion" (the camera wearer is "C").
_EGO4D_TAG = re.compile(r"^\s*#\w+\s+")


def _pace(speed: float) -> str:
    cm = speed * 100
    word = "slowly" if cm < 10 else "at a moderate pace" if cm < 30 else "quickly"
    return f"{word} (about {cm:.0f} cm/s)"


def hand_sentence(f: HandFacts) -> tuple[str, list[str]]:
    if f.visible_frac == 0:
        return f"The {f.side} hand is not visible.", []
    seen = "" if f.visible_frac >= 0.95 else f", visible in {f.visible_frac:.0%} of frames,"
    verbs: list[str] = []
    if f.moving:
        where = f" {' and '.join(f.directions)}" if f.directions else ""
        if not f.directions and f.directions_known:
            where = " around without net displacement"
        text = f"The {f.side} hand{seen} moves{where} {_pace(f.speed_m_s)}"
        verbs.append("move")
    else:
        text = f"The {f.side} hand{seen} stays mostly still"
    if f.grip:
        phrase, grip_verbs = _GRIP_WORDS[f.grip]
        text += f" and {phrase}"
        verbs += grip_verbs
    return text + ".", verbs


def describe(facts: list[HandFacts]) -> tuple[str, list[str]]:
    """Caption text and verbs for the facts of both hands."""
    visible = [f.side for f in facts if f.visible_frac > 0]
    moving = [f.side for f in facts if f.moving]
    opening = {0: "No hand is visible.", 1: f"Only the {visible[0]} hand is visible." if visible else ""}.get(
        len(visible), "Both hands are visible."
    )
    sentences, verbs = [f"Kinematic description from hand tracks: {opening}"], []
    for f in facts:
        sentence, hand_verbs = hand_sentence(f)
        sentences.append(sentence)
        verbs += [v for v in hand_verbs if v not in verbs]
    if len(moving) == 2:
        sentences.append("Two-handed activity.")
    elif len(moving) == 1:
        sentences.append(f"One-handed activity ({moving[0]} hand).")
    return " ".join(sentences), verbs


def narration_text(raw: str) -> str:
    return _EGO4D_TAG.sub("", raw).strip()


def caption_clip(clip: ClipSpec, facts: list[HandFacts]) -> list[Caption]:
    text, verbs = describe(facts)
    captions = [
        Caption(
            caption_id=caption_id(clip.clip_id, "kinematic", KINEMATIC_MODEL, None),
            clip_id=clip.clip_id,
            kind="kinematic",
            text=text,
            verbs=verbs,
            objects=[],
            model=KINEMATIC_MODEL,
        )
    ]
    if clip.narration:
        captions.append(
            Caption(
                caption_id=caption_id(clip.clip_id, "narration", "source", None),
                clip_id=clip.clip_id,
                kind="narration",
                text=narration_text(clip.narration),
                verbs=[],
                objects=[],
                model="source",
            )
        )
    return captions
