"""CLIP image and text embeddings through open_clip (BiomedCLIP by default).

    clip = load_clip("/models/microsoft--BiomedCLIP-...")   # or registry.get_clip(settings)
    img = clip.encode_images([jpeg_bytes, "fig.png", ...])  # (N, D) float32, unit rows
    txt = clip.encode_texts(["a confocal micrograph", ...])
    clip.image_text_similarity(img, txt)                    # (N, M) cosine

Sources (all local; `registry` downloads hub models into the model folder first):

* a folder with `open_clip_config.json` (`model_cfg` + `preprocess_cfg`) and weights
  (`open_clip_model.safetensors`, `open_clip_pytorch_model.bin`, ...) - the hub layout;
* `ARCH@weights.safetensors` (or `.pt`/`.bin`): ARCH is an open_clip model name
  (`ViT-B-16`) or the path of a JSON model config (a custom architecture);
* a weights file with `open_clip_config.json` beside it.

Weights must be present: nothing falls back to random initialisation.

Images are decoded and resized in DataLoader worker processes (JPEG files are decoded at a
reduced DCT scale when much larger than the model input); workers hand over uint8 tensors and
normalisation runs on the device, so decoding keeps up with the GPU. CUDA runs under
bf16/fp16 autocast.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models.device import (
    auto_batch_size,
    inference,
    is_cuda,
    loader_workers,
)

ImageInput = bytes | bytearray | memoryview | str | Path

WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CONFIG_NAME = "open_clip_config.json"

_REGISTER_LOCK = threading.Lock()


# ---------------------------------------------------------------------------- sources
def find_weights(folder: Path) -> Path | None:
    """The CLIP checkpoint in a hub-style folder, preferred names first."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return candidates[0] if candidates else None


def parse_source(spec: str | Path) -> tuple[dict[str, Any], dict[str, Any], Path, str]:
    """(model_cfg, preprocess_cfg, weights file, display name) for a local CLIP source.

    Raises ModelMissingError when files are absent and ModelError when they are unusable.
    """
    text = str(spec)
    arch: str | None = None
    if "@" in text and not Path(text).exists():
        arch, text = text.split("@", 1)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelMissingError(f"CLIP checkpoint not found: {path}")
    if path.is_dir():
        config_path = path / CONFIG_NAME
        if not config_path.is_file():
            raise ModelError(
                f"{path} has no {CONFIG_NAME}",
                hint="a CLIP folder needs open_clip_config.json beside its weights",
            )
        weights = find_weights(path)
        if weights is None:
            raise ModelMissingError(f"{path} has {CONFIG_NAME} but no CLIP weights file")
        model_cfg, preprocess_cfg = _read_config_file(config_path)
        return model_cfg, preprocess_cfg, weights, path.name
    weights = path
    if arch is not None:
        arch_path = Path(arch).expanduser()
        if arch_path.suffix == ".json" or arch_path.is_file():
            model_cfg, preprocess_cfg = _read_config_file(arch_path)
        else:
            import open_clip

            model_cfg = open_clip.get_model_config(arch)
            if model_cfg is None:
                raise ModelError(
                    f"open_clip has no model '{arch}'",
                    hint="use a name from open_clip.list_models() or a JSON config path",
                )
            preprocess_cfg = {}
        return model_cfg, preprocess_cfg, weights, f"{arch}@{weights.name}"
    sibling = weights.parent / CONFIG_NAME
    if sibling.is_file():
        model_cfg, preprocess_cfg = _read_config_file(sibling)
        return model_cfg, preprocess_cfg, weights, weights.name
    raise ModelError(
        f"cannot tell the architecture of {weights}",
        hint="write ARCH@path (e.g. ViT-B-16@/models/clip.pt) or put open_clip_config.json beside it",
    )


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read open_clip config {path}: {exc}") from exc
    if "model_cfg" in data:  # hub layout
        return dict(data["model_cfg"]), dict(data.get("preprocess_cfg", {}))
    if "vision_cfg" in data and "text_cfg" in data:  # open_clip model_configs/*.json layout
        return data, {}
    raise ModelError(f"{path} is not an open_clip model config (no model_cfg / vision_cfg)")


def _localise_text_tower(model_cfg: dict[str, Any], search: Sequence[Path]) -> dict[str, Any]:
    """Point a Hugging Face text tower (BiomedCLIP's PubMedBERT) at a local folder.

    open_clip builds such a tower from `AutoConfig.from_pretrained(hf_model_name)`; offline,
    that name must be a folder on disk (`microvqa models pull clip` fetches it).
    """
    text_cfg = dict(model_cfg.get("text_cfg", {}))
    changed = False
    for key in ("hf_model_name", "hf_tokenizer_name"):
        name = text_cfg.get(key)
        if not name or Path(name).is_dir():
            continue
        local = _find_hub_folder(name, search)
        if local is None:
            raise ModelMissingError(
                f"the CLIP text tower '{name}' (config and tokenizer) is not on disk",
                hint="run `microvqa models pull clip` once with internet access",
            )
        text_cfg[key] = str(local)
        changed = True
    if changed:
        model_cfg = {**model_cfg, "text_cfg": text_cfg}
    return model_cfg


def _find_hub_folder(repo_id: str, search: Sequence[Path]) -> Path | None:
    from microvqa_tui.models.hub import cached_snapshot, local_hub_dir

    for root in search:
        candidate = local_hub_dir(root, repo_id)
        if (candidate / "config.json").is_file():
            return candidate
    return cached_snapshot(repo_id, required="config.json")


def _register(model_cfg: dict[str, Any]) -> str:
    """Register `model_cfg` with open_clip under a content-derived name and return it."""
    import open_clip.factory as factory

    blob = json.dumps(model_cfg, sort_keys=True)
    name = "microvqa-" + hashlib.sha1(blob.encode()).hexdigest()[:16]
    with _REGISTER_LOCK:
        configs = getattr(factory, "_MODEL_CONFIGS", None)
        if configs is None:  # pragma: no cover - open_clip internals moved
            raise ModelError("this open_clip version has no model config registry")
        configs[name] = json.loads(blob)
    return name


# ---------------------------------------------------------------------------- images
class ImageItems:
    """Map-style dataset: item -> (uint8 CHW tensor after open_clip's resize/crop, ok flag).

    Plain class (no torch base) so importing this module stays light; it is picklable for
    worker processes started by spawn/forkserver.
    """

    def __init__(self, items: Sequence[ImageInput], geometry: Any, size: tuple[int, int]):
        self.items = items
        self.geometry = geometry
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        import torch

        try:
            image = decode_image(self.items[index], self.size)
            pixels = self.geometry(image)
            array = np.asarray(pixels, dtype=np.uint8)
            if array.ndim == 2:
                array = np.stack([array] * 3, axis=-1)
            tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
            return tensor, True
        except Exception:
            return torch.zeros((3, *self.size), dtype=torch.uint8), False


def decode_image(item: ImageInput, size: tuple[int, int] | None = None) -> Any:
    """A PIL RGB image from bytes or a path; JPEGs are decoded at a reduced scale when they
    are at least twice the target size (DCT scaling: far less work, same result after the
    resize)."""
    from PIL import Image

    if isinstance(item, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(item)))
    else:
        image = Image.open(item)
    if size is not None and image.format == "JPEG":
        image.draft("RGB", (size[1], size[0]))
    image.load()
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def _split_preprocess(preprocess: Any) -> tuple[Any, Any, Any]:
    """open_clip's eval transform -> (PIL geometry part, mean, std).

    The tail ToTensor + Normalize is done on the device instead (x / 255 - mean) / std, which
    is the same arithmetic.
    """
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    if (
        len(steps) < 2
        or not isinstance(steps[-1], T.Normalize)
        or not isinstance(steps[-2], T.ToTensor)
    ):
        raise ModelError("unexpected open_clip preprocessing pipeline (no ToTensor+Normalize)")
    normalize = steps[-1]
    return T.Compose(steps[:-2]), tuple(normalize.mean), tuple(normalize.std)


def _image_size(model: Any) -> tuple[int, int]:
    size = getattr(model.visual, "image_size", 224)
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


# ---------------------------------------------------------------------------- the model
class ClipModel:
    """A loaded open_clip model with batched, normalised encoders."""

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        *,
        device: str,
        model_id: str,
        path: Path | None = None,
        batch_size: int = 0,
        text_batch_size: int = 0,
        num_workers: int | None = None,
        mp_context: str | None = None,
    ) -> None:
        import torch

        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.model_id = model_id
        self.path = path
        self.batch_size = auto_batch_size("clip_image", device, batch_size)
        self.text_batch_size = auto_batch_size("clip_text", device, text_batch_size or batch_size)
        self.num_workers = num_workers
        self.mp_context = mp_context
        self.image_size = _image_size(model)
        self.geometry, mean, std = _split_preprocess(preprocess)
        self._mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self._lock = threading.Lock()
        self.dim = int(self._probe_dim())

    @property
    def name(self) -> str:
        return self.model_id

    def _probe_dim(self) -> int:
        proj = getattr(self.model, "embed_dim", None)
        if isinstance(proj, int):
            return proj
        return int(self.encode_texts(["probe"]).shape[1])

    # -- images
    def encode_pixels(self, pixels: Any) -> Any:
        """uint8 (B, 3, H, W) tensor (any device) -> unit float32 (B, D) tensor on the device."""
        import torch

        x = pixels.to(self.device, non_blocking=True)
        with inference(self.device):
            x = (x.float() / 255.0 - self._mean) / self._std
            feats = self.model.encode_image(x)
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def pixels(self, images: Sequence[ImageInput]) -> Any:
        """Decode and resize in this process: uint8 (N, 3, H, W) tensor (for benchmarks)."""
        import torch

        data = ImageItems(images, self.geometry, self.image_size)
        tensors = []
        for i in range(len(data)):
            tensor, ok = data[i]
            if not ok:
                raise ModelError(f"image {i} cannot be decoded")
            tensors.append(tensor)
        return torch.stack(tensors) if tensors else torch.zeros((0, 3, *self.image_size))

    def encode_images(
        self,
        images: Sequence[ImageInput],
        *,
        batch_size: int | None = None,
        num_workers: int | None = None,
        on_error: str = "raise",
    ) -> np.ndarray:
        """(N, D) float32 unit embeddings of images given as bytes or file paths.

        An undecodable image raises ModelError naming its index, or with on_error="nan"
        gets a row of NaN.
        """
        import torch
        from torch.utils.data import DataLoader

        n = len(images)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        bs = batch_size or self.batch_size
        workers = loader_workers(
            n, bs, num_workers if num_workers is not None else self.num_workers
        )
        loader = DataLoader(
            ImageItems(images, self.geometry, self.image_size),
            batch_size=bs,
            shuffle=False,
            num_workers=workers,
            pin_memory=is_cuda(self.device),
            prefetch_factor=4 if workers else None,
            multiprocessing_context=self.mp_context if workers else None,
        )
        bad: list[int] = []
        start = 0
        with self._lock:
            for pixels, ok in loader:
                feats = self.encode_pixels(pixels)
                end = start + pixels.shape[0]
                out[start:end] = feats.cpu().numpy()
                flags = ok.numpy() if isinstance(ok, torch.Tensor) else np.asarray(ok)
                bad.extend(start + int(i) for i in np.flatnonzero(~flags.astype(bool)))
                start = end
        if bad:
            if on_error == "nan":
                out[bad] = np.nan
            else:
                shown = ", ".join(map(str, bad[:10]))
                raise ModelError(f"{len(bad)} image(s) cannot be decoded (index {shown})")
        return out

    # -- texts
    def encode_texts(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """(N, D) float32 unit embeddings of texts (truncated to the tower's context)."""
        import torch

        texts = [str(t) for t in texts]
        bs = batch_size or self.text_batch_size
        chunks = []
        with self._lock:
            for i in range(0, len(texts), bs):
                tokens = self.tokenizer(texts[i : i + bs]).to(self.device)
                with inference(self.device):
                    feats = self.model.encode_text(tokens)
                chunks.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
        if not chunks:
            return np.zeros((0, getattr(self, "dim", 0) or 0), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    # -- similarities
    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine matrix (N, M) of unit embeddings."""
        return np.asarray(a, dtype=np.float32) @ np.asarray(b, dtype=np.float32).T

    def image_text_similarity(self, image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        return self.similarity(image_emb, text_emb)

    def paired_image_text(self, images: Sequence[ImageInput], texts: Sequence[str]) -> np.ndarray:
        """Cosine of each image with its own text (N,): e.g. figure-caption agreement."""
        if len(images) != len(texts):
            raise ValueError("images and texts must have the same length")
        return paired_cosine(self.encode_images(images), self.encode_texts(texts))

    def paired_text_text(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine of each text in `a` with the text at the same index in `b` (N,)."""
        if len(a) != len(b):
            raise ValueError("both text lists must have the same length")
        return paired_cosine(self.encode_texts(a), self.encode_texts(b))

    def close(self) -> None:
        self.model = None


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays of unit vectors."""
    return np.einsum("nd,nd->n", np.asarray(a, np.float32), np.asarray(b, np.float32))


def load_clip(
    spec: str | Path,
    *,
    device: str = "cpu",
    model_dir: Path | None = None,
    batch_size: int = 0,
    num_workers: int | None = None,
    mp_context: str | None = None,
    model_id: str | None = None,
) -> ClipModel:
    """Load a local open_clip checkpoint (see the module doc for accepted forms)."""
    import open_clip

    model_cfg, preprocess_cfg, weights, display = parse_source(spec)
    search = [model_dir] if model_dir is not None else []
    model_cfg = _localise_text_tower(model_cfg, search)
    name = _register(model_cfg)
    try:
        model = open_clip.create_model(
            name,
            pretrained=str(weights),
            device=device,
            precision="fp32",
            pretrained_text=False,
            pretrained_image=False,
            require_pretrained=True,
            force_preprocess_cfg=preprocess_cfg or None,
        )
        from open_clip.transform import PreprocessCfg, image_transform_v2

        preprocess = image_transform_v2(
            PreprocessCfg(**model.visual.preprocess_cfg), is_train=False
        )
        tokenizer = open_clip.get_tokenizer(name)
    except (ModelMissingError, ModelError):
        raise
    except Exception as exc:
        raise ModelError(f"open_clip cannot load {spec}: {exc}") from exc
    model.eval()
    return ClipModel(
        model,
        preprocess,
        tokenizer,
        device=device,
        model_id=model_id or display,
        path=weights,
        batch_size=batch_size,
        num_workers=num_workers,
        mp_context=mp_context,
    )
