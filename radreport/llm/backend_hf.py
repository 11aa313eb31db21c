"""The plain Hugging Face backend: transformers + peft (+ bitsandbytes NF4) + TRL.

A fallback where unsloth cannot load a model, and a comparison point. TRL 1.15's
SFTTrainer scores tokens through a fused LM head written in Triton, which has no CPU
driver; `ResponseOnlySFTTrainer` computes the same response-only cross-entropy in plain
torch, and like TRL it projects only the positions that carry a label through the LM head
(the prompt's logits would be thrown away, and the head is a fifth of a small model's FLOPs),
a chunk of tokens at a time (radreport.llm.chunked_head_loss).
"""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from peft.helpers import disable_input_dtype_casting
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTTrainer

from radreport.data.alpaca import IGNORE_INDEX
from radreport.llm.base_model import resolve_base_model
from radreport.llm.chunked_head_loss import HeadLoss, chunked_head_loss, materialized_head_loss
from radreport.llm.fused_lora import install_fused_lora
from radreport.llm.fused_rms_norm import install_fused_rms_norm
from radreport.llm.fused_swiglu import install_fused_swiglu
from radreport.llm.grouped_attention import ATTENTION_NAME, register_grouped_eager_or_sdpa
from radreport.llm.length_grouped_order import SeededLengthGroupedOrder
from radreport.llm.lora_targets import check_lora_targets
from radreport.llm.quantized_cpu_training import keep_4bit_layers_differentiable
from radreport.llm.settings import LLMSettings
from radreport.llm.token_weighted_eval_loss import TokenWeightedEvalLoss
from radreport.llm.warmup_before_last_step import WarmupBeforeLastStep


def load_model(settings: LLMSettings):
    """(PEFT model with fresh LoRA adapters, tokenizer) for resolved `settings`."""
    path = resolve_base_model(settings.base_model)
    dtype = getattr(torch, settings.compute_dtype)
    quantization = None
    if settings.load_in_4bit:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if settings.attention == ATTENTION_NAME:
        register_grouped_eager_or_sdpa()
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        quantization_config=quantization,
        device_map=device,
        attn_implementation=settings.attention,
    )
    keep_4bit_layers_differentiable(model)
    check_lora_targets(model, settings.target_modules)
    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if settings.fused_lora:
        install_fused_lora(model)
    if settings.fused_elementwise:
        install_fused_rms_norm(model)
        install_fused_swiglu(model)
    return model, AutoTokenizer.from_pretrained(path)


def _adapter_inputs_kept_in_autocast_dtype(model, device_type: str):
    """Under autocast, stop PEFT copying each LoRA layer's input up to the adapter's fp32.

    PEFT keeps adapters in fp32 over a bf16 base and casts every LoRA layer's input to
    fp32; autocast then casts it back to bf16 for the adapter's product, and the backward
    pass undoes both. The round trip is exact, so skipping it changes no value (the adapter
    weights after training are bit-identical) and saves two copies of every adapted
    projection's input per step: 1.11x per step with the IU config's prompts. Outside
    autocast the input must match the fp32 weights, so PEFT's cast stays.
    """
    return disable_input_dtype_casting(model, active=torch.is_autocast_enabled(device_type))


def _without_right_padding_mask(features: dict) -> dict:
    """The batch without its attention mask when every row is padded on the right only.

    Under causal attention a real token never sees a later position, so right padding
    changes nothing that is scored (padding carries no label). Without a mask, SDPA takes
    its is_causal path instead of applying a materialised mask: 1.4x faster per layer at
    736 tokens on CPU (BENCHMARKS.md, sixteenth session); the grouped eager kernel builds
    one causal mask of the batch's length instead of one per row. Packed rows (position_ids) and
    any other padding keep their mask.
    """
    mask = features.get("attention_mask")
    if mask is None or "position_ids" in features:
        return features
    if not bool((mask[:, 1:] <= mask[:, :-1]).all()):
        return features
    return {key: value for key, value in features.items() if key != "attention_mask"}


def _backbone_and_head(model):
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return causal_lm.get_decoder(), causal_lm.get_output_embeddings()


class ResponseOnlySFTTrainer(
    TokenWeightedEvalLoss, SeededLengthGroupedOrder, WarmupBeforeLastStep, SFTTrainer
):
    """SFTTrainer whose loss runs on any device: cross-entropy over labelled tokens only.

    `fused_head_loss` scores the head's chunks with the compiled CPU kernel where it can
    (radreport.llm.chunked_head_loss); False keeps PyTorch operations. Length-grouped
    batches come in an order a resumed run repeats (radreport.llm.length_grouped_order);
    the validation loss weighs every labelled token alike (token_weighted_eval_loss); the
    warmup leaves the last step at least (warmup_before_last_step).
    """

    def __init__(self, *args, fused_head_loss: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused_head_loss = fused_head_loss
        # compute_loss divides by num_items_in_batch (all labelled tokens of the accumulated
        # batch), so the Trainer must not divide by the accumulation steps again.
        self.model_accepts_loss_kwargs = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        features = _without_right_padding_mask(
            {key: value for key, value in inputs.items() if key != "labels"}
        )
        next_labels = inputs["labels"][:, 1:]
        trained = next_labels != IGNORE_INDEX
        backbone, lm_head = _backbone_and_head(model)
        # The Trainer's mixed precision wraps the model's own forward; calling the backbone
        # and head directly, as here, must enter it again, or bf16/fp16 runs would compute
        # the adapters in fp32 and cast every LoRA layer's output.
        device_type = inputs["input_ids"].device.type
        with (
            self.accelerator.autocast(),
            _adapter_inputs_kept_in_autocast_dtype(model, device_type),
        ):
            hidden = backbone(**features, use_cache=False).last_hidden_state[:, :-1][trained]
            compute_dtype = (
                torch.get_autocast_dtype(device_type)
                if torch.is_autocast_enabled(device_type)
                else hidden.dtype
            )
        targets = next_labels[trained]
        denominator = trained.sum() if num_items_in_batch is None else num_items_in_batch
        if type(lm_head) is torch.nn.Linear and lm_head.bias is None:
            scored = chunked_head_loss(
                hidden, lm_head.weight, targets, compute_dtype, fused=self.fused_head_loss
            )
        else:
            # A head that is wrapped (an adapter on it) or quantized runs through its module.
            with self.accelerator.autocast():
                scored = materialized_head_loss(lm_head(hidden).float(), targets)
        loss = scored.loss_sum / max(int(denominator), 1)
        self._record_token_metrics(scored, targets.numel())
        return (loss, {"loss": loss}) if return_outputs else loss

    def _record_token_metrics(self, scored: HeadLoss, count: int) -> None:
        """TRL's mean_token_accuracy and entropy, so both backends log the same metrics."""
        if count == 0:
            return
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["mean_token_accuracy"].append(scored.correct / count)
        self._metrics[mode]["entropy"].append(scored.entropy_sum / count)


def trainer_class() -> type[SFTTrainer]:
    return ResponseOnlySFTTrainer


def trainer_options(settings: LLMSettings) -> dict:
    """Keyword arguments of trainer_class() that come from the settings."""
    return {"fused_head_loss": settings.fused_elementwise}
