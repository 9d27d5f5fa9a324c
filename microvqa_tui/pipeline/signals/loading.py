"""Which model each signal family runs on, and the model string each signal stores.

A family whose model is missing is listed in `missing` (family -> how to get it); its
signals are then written as placeholders. `load_models` loads what is there (on the driver
to settle the ids, and once more on each worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from microvqa_tui.config.signals import SignalSettings
from microvqa_tui.pipeline.step import configured_model, load_model, model_name
from microvqa_tui.vocabulary import FAMILY_SIGNALS

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

MISSING = "model missing: "  # detail prefix of placeholders written for a missing model
TEXT = "_text"  # the key of the text model among the loaded models


@dataclass
class Models:
    """What each family runs on: the loaded model (or None) and the `model` string stored."""

    objects: dict[str, Any] = field(default_factory=dict)  # family -> model (None = missing)
    missing: dict[str, str] = field(default_factory=dict)  # family -> message
    signal_model: dict[str, str] = field(default_factory=dict)  # signal name -> model string
    text: Any = None  # MiniLM (text family, agent agreement)
    text_id: str = ""
    agent_image: bool = False
    device: str = "auto"  # where the k-NN search of the pixel family runs

    def ids(self) -> Models:
        """What decides a run's outputs, without the models (shipped to workers)."""
        return replace(self, objects={}, text=None)

    def loaded(self) -> dict[str, Any]:
        """family -> model, and the text model under `TEXT` (what a worker holds)."""
        return {**self.objects, TEXT: self.text}


def load_models(settings: Settings, cfg: SignalSettings, provider: Any) -> Models:
    m = Models()
    cache: dict[str, tuple[Any, str]] = {}
    m.device = settings.models.device

    def get(role: str) -> tuple[Any, str]:
        if role not in cache:
            cache[role] = load_model(role, settings, provider)
        return cache[role]

    def ident(role: str, model: Any) -> str:
        return (
            model_name(model, settings, role)
            if model is not None
            else configured_model(settings, role)
        )

    text, text_msg = get("text") if {"text", "agent", "pixel"} & set(cfg.families) else (None, "")
    m.text, m.text_id = text, ident("text", text)
    for family in cfg.families:
        if family == "agent":
            vlm_configured = bool(settings.models.vlm)
            use_image = cfg.agent_source == "image" or (
                cfg.agent_source == "auto" and vlm_configured
            )
            role = "vlm" if use_image else "llm"
            model, message = get(role)
            m.agent_image = use_image
            llm_id = ident(role, model)
            measure = (
                m.text_id if (text is not None and cfg.agreement != "token_f1") else "token_f1"
            )
            m.signal_model["agent_agreement"] = f"{llm_id}+{measure}"
            m.signal_model["agent_supported"] = llm_id
        elif family == "pixel":  # the built-in descriptor + MiniLM; missing with MiniLM
            from microvqa_tui.models.pixel import MODEL_ID as PIXEL_MODEL

            model = text
            message = f"image_neighbour_caption_agreement needs the text model: {text_msg}"
            m.signal_model["image_neighbour_caption_agreement"] = f"{PIXEL_MODEL}+{m.text_id}"
        else:
            role = family
            model, message = (text, text_msg) if family == "text" else get(role)
            for name in FAMILY_SIGNALS[family]:
                m.signal_model[name] = ident(role, model)
        m.objects[family] = model
        if model is None:
            m.missing[family] = message or f"no {role} model"
    if cfg.agreement == "minilm" and text is None and "agent" in cfg.families:
        m.objects["agent"] = None
        m.missing["agent"] = f"signals.agreement=minilm needs the text model: {text_msg}"
    return m
