"""The CLUTCH language model: ``transformers``' T5ForConditionalGeneration with the motion vocabulary added.

Every model comes from a local Hugging Face folder through ``load_base``, the path a downloaded checkpoint
(flan-t5-base, the paper's) takes. Nothing can be downloaded here, so the ``tiny`` and ``base`` presets first
write such a folder (``init_base``): a T5 built from a config with random weights, and a SentencePiece-style
Unigram tokenizer trained with ``tokenizers`` on the dataset's own text, with T5's special tokens and
``<extra_id_*>`` sentinels. ``base`` is flan-t5-base's shape (for throughput figures); ``tiny`` trains on a CPU in
minutes. ``add_motion_vocab`` then appends the 2K + 3 motion tokens and resizes the embeddings.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from hiw.annotators.embed import quiet_offline_loading
from hiw.errors import ConfigError
from hiw.lm.vocab import PREFIX, MotionVocab

# flan-t5-base: d_model 768, 12 + 12 layers, 12 heads, d_ff 2048, gated-gelu
T5_SHAPES: dict[str, dict] = {
    "tiny": dict(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4),
    "base": dict(d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12),
}
TEXT_VOCAB = {"tiny": 2000, "base": 32000}  # the trained tokenizer's target size (a small corpus yields fewer)
SENTINELS = 100  # T5's <extra_id_0..99>: span corruption needs about length x 0.15 / 3 of them
SPECIAL = ["<pad>", "</s>", "<unk>"]  # T5's ids 0, 1, 2


def init_base(out: Path, preset: str, texts: Iterable[str]) -> Path:
    """Write a randomly initialised T5 of ``preset``'s shape and a tokenizer trained on ``texts`` to ``out``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    if preset not in T5_SHAPES:
        raise ConfigError(f"--preset must be one of {sorted(T5_SHAPES)} (got {preset!r})")
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=TEXT_VOCAB[preset], special_tokens=SPECIAL, unk_token="<unk>")
    tokenizer.train_from_iterator(texts, trainer)
    fast = T5TokenizerFast(
        tokenizer_object=tokenizer, extra_ids=SENTINELS, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(fast),
        feed_forward_proj="gated-gelu",
        # transformers 5 ties T5's output layer to its embeddings whatever the config says; tie_word_embeddings=False
        # (flan-t5's) only drops the d_model^-0.5 output scale, and from a random init that starts the loss near 25.
        decoder_start_token_id=fast.pad_token_id,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        **T5_SHAPES[preset],
    )
    out.mkdir(parents=True, exist_ok=True)
    with quiet_offline_loading():
        T5ForConditionalGeneration(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def load_base(path: Path):
    """(model, tokenizer) from a local Hugging Face T5 folder; a folder that is not one is a usage error."""
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    if not (path / "config.json").is_file():
        raise ConfigError(f"--lm {path} is not a Hugging Face model folder (no config.json)")
    with warnings.catch_warnings(), quiet_offline_loading():
        warnings.simplefilter("ignore")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = T5ForConditionalGeneration.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ConfigError(f"--lm {path} could not be loaded as a T5 model: {str(err).splitlines()[0]}") from err
    return model, tokenizer


def from_weights(t5: dict, weights: dict):
    """A T5 of config ``t5`` holding ``weights`` (a checkpoint's state dict). transformers 5 ties the output layer to
    the embeddings on construction; flan-t5 has its own output layer (``from_pretrained`` keeps it apart), so where
    the weights differ the two are untied first, or loading would overwrite one with the other."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    model = T5ForConditionalGeneration(T5Config.from_dict(t5))
    head, shared = weights.get("lm_head.weight"), weights.get("shared.weight")
    if head is not None and shared is not None and not torch.equal(head, shared):
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    model.load_state_dict(weights)
    return model


def add_motion_vocab(model, tokenizer, vocab: MotionVocab) -> int:
    """Append the motion tokens (or check they are there, in order) and size the embeddings to the tokenizer;
    returns the id of ``<motion_id_0>``: motion id i is that + i."""
    names = vocab.tokens()
    present = tokenizer.convert_tokens_to_ids(names[0])
    if present == tokenizer.unk_token_id or present is None:
        tokenizer.add_tokens(names)
    base = tokenizer.convert_tokens_to_ids(names[0])
    if tokenizer.convert_tokens_to_ids(names[-1]) != base + vocab.size - 1 or f"{PREFIX}{vocab.size}>" in tokenizer.get_vocab():
        raise ConfigError(f"the tokenizer's motion tokens do not match a {vocab.size}-token motion vocabulary")
    if model.get_input_embeddings().num_embeddings != len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return base


def sentinel_ids(tokenizer) -> list[int]:
    """T5's span-corruption sentinels ``<extra_id_0>``, ``<extra_id_1>``, ... as ids."""
    ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{k}>" for k in range(SENTINELS)])
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]
