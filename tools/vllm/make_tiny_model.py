"""Build a tiny, randomly initialised Idefics3 (SmolVLM-style) model directory for `vllm serve`.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on a small built-in corpus,
the weights are random (seeded), and the processor configs are written by hand. The output is
deterministic for a given --seed.

Run with the vLLM venv's python (transformers, tokenizers, torch and safetensors come with vllm):

    .venv-vllm/bin/python tools/vllm/make_tiny_model.py [--out .cache/vllm/tiny-vlm] [--force]

Architecture: Idefics3ForConditionalGeneration (the SmolVLM architecture): a SigLIP-style vision
tower (hidden 64 x 2 layers, 112 px tiles, 14 px patches), a pixel-shuffle connector (scale 2:
16 tokens per tile) and a Llama text model (hidden 128 x 2 layers). Images are resized to a longest
edge of 224 px and split into at most 2x2 tiles of 112 px plus one global tile, so one image costs at
most 5 * 16 image tokens plus a few marker tokens.

Why not Qwen2-VL: vLLM 0.32's qwen2_vl.py (and qwen2_5_vl, qwen3_vl, llava, gemma3, internvl, ...)
imports transformers modules that need torchvision, and there is no CPU torchvision for torch 2.13
here. Idefics3 (and SmolVLM, PaliGemma) import and process images with the PIL backend.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / ".cache" / "vllm" / "tiny-vlm"
# The stamp in the model dir records the hash of this file: any edit here rebuilds the model.
RECIPE_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)],
]

BPE_VOCAB = 2048  # upper bound on learned tokens (256 byte symbols included); specials follow

TILE = 112  # vision tower input size (px); an image is split into tiles of this size
PATCH = 14  # 8x8 patches per tile
SCALE_FACTOR = 2  # pixel shuffle: 64 patches -> 16 tokens per tile
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE_FACTOR**2
LONGEST_EDGE = 2 * TILE  # images are resized to this longest edge, then split into <= 2x2 tiles

# Chat template in the SmolVLM style ("<|im_start|>User:<image>question<end_of_utterance>\n
# Assistant:"). It iterates over OpenAI content-part lists, so vLLM detects the "openai" content
# format and keeps the image parts (vLLM turns image_url parts into {"type": "image"}).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] | capitalize + ':' }}"
    "{%- if message['content'] is string -%}"
    "{{ ' ' + message['content'] }}"
    "{%- else -%}"
    "{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' or content['type'] == 'image_url' or 'image' in content -%}"
    "{{ '<image>' }}"
    "{%- elif 'text' in content -%}"
    "{{ ' ' + content['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<end_of_utterance>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ 'Assistant:' }}"
    "{%- endif -%}"
)

CORPUS = """
The left hand holds the cup while the right hand pours water from the kettle.
A person opens the drawer, takes out a knife and cuts the tomato on the board.
The right hand moves the plate to the sink; the left hand is idle on the counter.
She picks up the sponge, washes the bowl, rinses it and puts it on the rack.
He grabs the handle of the pan, stirs the onions with a wooden spoon and adds salt.
Both hands fold the towel. Then the left hand places the towel next to the stove.
The camera looks down at the table: a mug, a spoon, a jar of jam and two slices of bread.
Spread the butter on the bread with the knife, then close the jar and wipe the table.
The hand reaches for the fridge door, pulls it open, and takes a carton of milk.
Pour the milk into the glass, put the carton back, and close the fridge.
The person peels an apple, cuts it into pieces and puts the pieces in a bowl.
Turn on the tap, fill the pot with water, place it on the stove and turn the knob.
Chop the carrots, slice the cucumber, dice the pepper and mix everything in the bowl.
The right hand holds the phone; the left hand scrolls the recipe on the screen.
Open the cupboard, take two plates and set them on the table next to the forks.
verb objects left_hand right_hand holds moves idle absent grasp release push pull twist
{"verb": "pour", "objects": ["kettle", "cup"], "left_hand": "holds", "right_hand": "moves"}
{"verb": "cut", "objects": ["knife", "tomato", "board"], "left_hand": "holds"}
{"verb": "wash", "objects": ["sponge", "bowl"], "left_hand": "moves", "right_hand": "idle"}
Describe the action in the image. What is the left hand doing? Which objects are touched?
Answer with a short JSON object. Summarise the clip in one sentence. Name the main verb.
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 20 25 30 32 40 50 64 100 128 256 512 1000
"""


def _tokenizer_json(seed_corpus: str) -> str:
    """Train a byte-level BPE (GPT-2/Qwen style) on the built-in corpus; return tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    lines = [ln for ln in seed_corpus.strip().splitlines() if ln.strip()]
    # repeat the corpus so frequent pairs are merged; the order is fixed, so training is deterministic
    tok.train_from_iterator(lines * 4, trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok.to_str(pretty=True)


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def build(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    # --- tokenizer -------------------------------------------------------------------------
    (tmp / "tokenizer.json").write_text(_tokenizer_json(CORPUS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tmp / "tokenizer.json"),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[3:],
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(tmp)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    # Embedding rows == tokenizer size: even unconstrained sampling only yields decodable ids.
    vocab_size = len(tokenizer)

    # --- model config + random weights -----------------------------------------------------
    pad_id, bos_id, eos_id = ids["<|endoftext|>"], ids["<|im_start|>"], ids["<end_of_utterance>"]
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": vocab_size,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "pad_token_id": pad_id,
            "tie_word_embeddings": False,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_channels": 3,
            "image_size": TILE,
            "patch_size": PATCH,
        },
        scale_factor=SCALE_FACTOR,
        image_token_id=ids["<image>"],
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    config.architectures = ["Idefics3ForConditionalGeneration"]
    config.bos_token_id = bos_id
    config.eos_token_id = eos_id

    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model = model.to(torch.bfloat16)  # what vLLM runs on CPU anyway (it downcasts float32)
    model.save_pretrained(tmp, safe_serialization=True)
    n_params = sum(p.numel() for p in model.parameters())

    _write_json(
        tmp / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": [eos_id, pad_id], "pad_token_id": pad_id},
    )

    # --- processor configs (the PIL backend is used: no torchvision in the vLLM venv) --------
    _write_json(
        tmp / "preprocessor_config.json",
        {
            "image_processor_type": "Idefics3ImageProcessor",
            "processor_class": "Idefics3Processor",
            "do_convert_rgb": True,
            "do_resize": True,
            "size": {"longest_edge": LONGEST_EDGE},
            "resample": 1,
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "do_pad": True,
            "do_image_splitting": True,
            "max_image_size": {"longest_edge": TILE},
        },
    )
    _write_json(
        tmp / "processor_config.json",
        {"processor_class": "Idefics3Processor", "image_seq_len": IMAGE_SEQ_LEN},
    )

    stamp = {
        "recipe": RECIPE_VERSION,
        "seed": seed,
        "architecture": "Idefics3ForConditionalGeneration",
        "parameters": n_params,
        "tokenizer_size": len(tokenizer),
        "image_seq_len": IMAGE_SEQ_LEN,
        "special_token_ids": {k: v for k, v in ids.items() if not k.startswith("<row_")},
    }
    _write_json(tmp / "tiny_model_stamp.json", stamp)

    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def digest(path: Path) -> str:
    """Hash of every file in the model dir (for determinism checks)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def is_current(out: Path, seed: int = 0) -> bool:
    stamp = out / "tiny_model_stamp.json"
    if not stamp.is_file():
        return False
    try:
        meta = json.loads(stamp.read_text())
    except ValueError:
        return False
    return meta.get("recipe") == RECIPE_VERSION and meta.get("seed") == seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HOME", str(ROOT / ".cache" / "huggingface"))
    out = args.out.resolve()
    if not args.force and is_current(out, args.seed):
        print(f"{out}: up to date")
        return 0
    build(out, args.seed)
    meta = json.loads((out / "tiny_model_stamp.json").read_text())
    print(
        f"{out}: {meta['architecture']}, {meta['parameters']} parameters, "
        f"{meta['tokenizer_size']} tokens, digest {digest(out)[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
