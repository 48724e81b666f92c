"""Quality checks on VLM captions: refusals, empty answers, claims the hand tracks contradict, outliers.

Each check returns plain values or short notes (stable wording, a prefix naming the check), so the
caller decides what to reject; none of them call the VLM.
"""

from __future__ import annotations

import math
import re
import textwrap

import numpy as np

from hiw.motion.facts import HandFacts

SIDES = ("left", "right")
ACTING_ROLES = ("active", "supporting")

# Refusal phrasing counts only at the start ("I'm sorry, ...") or as a whole-text pattern no caption
# of hands would use; "The right hand cannot reach the cup" is a caption.
_REFUSAL_START = re.compile(
    r"""^\W*(?:
        (?:i'm|im|i\ am)\ (?:so\ |very\ |really\ )?sorry | sorry\b | (?:my\ )?apologies | i\ apologi[sz]e
        | i\ (?:cannot|can't|can\ not|could\ not|couldn't|won't|will\ not|am\ unable|am\ not\ able)\b
        | i'm\ (?:unable|not\ able)\b
        | unfortunately,?\ i\b | as\ an\ ai\b | (?:i'm|i\ am)\ (?:just\ )?(?:an?\ )?(?:ai|language\ model|text-based)\b
        | (?:there\ is\ |there's\ )?no\ (?:image|video|frame|visual|picture|clip)s?\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_REFUSAL_ANYWHERE = re.compile(
    r"""\bas\ an\ ai\b | \b(?:ai|large)\ language\ model\b
    | \b(?:i\ (?:cannot|can't|can\ not|am\ unable\ to|am\ not\ able\ to)|i'm\ (?:unable|not\ able)\ to)
        \ (?:see|view|watch|help|assist|determine|identify|provide|describe|access|tell|analy[sz]e|process)\b
    | \bunable\ to\ (?:see|view|determine|identify|access)\ (?:the\ |any\ |this\ )?(?:image|video|frame|clip|picture|content)s?\b
    | \bno\ (?:image|video|frame|visual|picture)s?\ (?:is\ |are\ |was\ |were\ |has\ been\ |have\ been\ )?(?:provided|attached
        |available|shown|given|included|uploaded)\b""",
    re.IGNORECASE | re.VERBOSE,
)

# Clauses that say a hand is still, idle or missing claim no action ("the left hand rests").
_STILL = re.compile(
    r"\b(?:not|no|never|neither|nor|idle|still|rests?|resting|rested|static|stationary|motionless|absent|invisible|hidden"
    r"|unseen|unused|inactive|remains?|stays?|out of (?:view|frame|sight)|off[- ]screen)\b"
)
_CLAUSE = re.compile(r"[,;.!?]+|\b(?:while|whilst|whereas|but|then|as)\b|\band\b(?! (?:the )?(?:left|right) hands)")
_BOTH = re.compile(r"\b(?:both (?:of (?:the|their|his|her) )?hands|two hands|left and right hands|right and left hands)\b")
_NAMED = {side: re.compile(rf"\b{side} hand\b") for side in SIDES}


def refusal(text: str) -> str | None:
    """A note when the text is a refusal, apology or AI disclaimer instead of an answer, else None."""
    flat = " ".join(text.replace("\u2019", "'").split())
    if _REFUSAL_START.search(flat) or _REFUSAL_ANYWHERE.search(flat):
        return "refusal: " + textwrap.shorten(flat, 80, placeholder="...")
    return None


def empty_answer(answer: dict) -> bool:
    """True when every string in the answer (nested lists/dicts too) is blank and every list empty."""
    if isinstance(answer, str):
        return not answer.strip()
    if isinstance(answer, dict):
        return all(empty_answer(v) for v in answer.values())
    if isinstance(answer, (list, tuple)):
        return all(empty_answer(v) for v in answer)
    return answer is None


def grounding_notes(roles: dict[str, str] | None, caption: str, facts: list[HandFacts], min_visible: float = 0.1) -> list[str]:
    """Claims of the hand_role answer or the caption that the tracks contradict.

    A side without facts is not judged: no facts is no evidence either way.
    """
    by_side = {f.side: f for f in facts}
    absent = {s for s, f in by_side.items() if f.visible_frac < min_visible}
    notes: list[str] = []
    for side, role in (roles or {}).items():
        role = (role or "").strip().lower()
        f = by_side.get(side)
        if f is None or role not in ACTING_ROLES:
            continue
        if side in absent:
            notes.append(f"grounding: hand_role says the {side} hand is {role} but it is not visible in the tracks")
        elif role == "active" and not f.moving and f.grip is None:
            notes.append(f"grounding: hand_role says the {side} hand is active but it is still in the tracks")
    for clause in _CLAUSE.split(caption.lower()):
        if _STILL.search(clause):
            continue
        if _BOTH.search(clause):
            notes += [
                f"grounding: the caption says both hands but the {s} hand is not visible in the tracks"
                for s in SIDES
                if s in absent
            ]
            continue
        named = [s for s in SIDES if _NAMED[s].search(clause)]
        if len(named) == 1 and named[0] in absent:
            notes.append(f"grounding: the caption has the {named[0]} hand act but it is not visible in the tracks")
    return list(dict.fromkeys(notes))


def mean_similarity(vector: np.ndarray, others: list[np.ndarray]) -> float:
    """Mean cosine similarity of one unit vector to others (nan when there are none): a caption's agreement with its
    clip's PCoT answers, from embeddings computed in one batch (``hiw.annotators.review``)."""
    return float(np.mean(np.stack(others) @ vector)) if others else math.nan


def lof_outliers(embeddings: np.ndarray, n_neighbors: int = 20, max_factor: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """(Local Outlier Factor per row on cosine distance, factor > max_factor); NaN and False below 3 rows.

    Neighbours are capped at half the rows: with nearly all rows as neighbours every neighbourhood is
    the whole set and every factor is ~1 (6 kitchen captions + 1 unrelated: 1.02 vs 1.02 at k=6,
    1.00 vs 1.54 at k=3). Identical rows (repeated captions) are scored once, as LOF divides by
    their zero distances and would make their neighbours look like outliers.
    """
    from sklearn.neighbors import LocalOutlierFactor  # here: the vLLM venv running the offline backend has no sklearn

    x = np.asarray(embeddings, dtype=np.float64)
    factor = np.full(len(x), np.nan)
    if len(x):
        unique, inverse = np.unique(np.round(x, 5), axis=0, return_inverse=True)
        if len(unique) >= 3:
            lof = LocalOutlierFactor(n_neighbors=min(n_neighbors, (len(unique) - 1) // 2), metric="cosine")
            factor = -lof.fit(unique).negative_outlier_factor_[inverse.reshape(-1)]
    return factor, factor > max_factor
