"""Which model architectures each decoding engine runs, known before any model loads, so a
config asking for an engine its base model cannot use is refused when it is loaded rather
than after training.

The native decoder's kernel is written for Llama's layers (its full check, with the
model's biases and activation, is in native_generate). ONNX Runtime GenAI's model builder
exported and decoded Llama, Mistral and Qwen2 models here; on Gemma 2 (its sliding-window
cache), Phi-3, GPT-2 and GPT-NeoX it failed (forty-ninth session), so those and any other
architecture are refused up front.
"""

from __future__ import annotations

NATIVE_MODEL_TYPES = ("llama",)
ONNX_MODEL_TYPES = ("llama", "mistral", "qwen2")
_SUPPORTED = {"native": NATIVE_MODEL_TYPES, "onnxruntime": ONNX_MODEL_TYPES}


class DecoderUnavailable(RuntimeError):
    """A decoding engine cannot run this model."""


def decoder_problem(decoder: str, model_type: str | None) -> str | None:
    """Why `decoder` cannot run a model of `model_type`, or None (also where the type is
    unknown: a hub id before download, or an engine that runs any model)."""
    supported = _SUPPORTED.get(decoder)
    if supported is None or model_type is None or model_type in supported:
        return None
    names = ", ".join(supported)
    return (
        f"the {decoder} decoder runs {names} models; this one's model_type is "
        f"{model_type!r}: use decoder 'torch' (or 'auto')"
    )
