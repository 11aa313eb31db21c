"""Every knob of LLM fine-tuning and generation, validated; one place for their defaults.

Defaults are the fastest honest CPU setup measured by benchmarks/train_throughput.py
(benchmarks/results/train_throughput.md): length-grouped batches and, through the "auto"
values resolved in radreport.llm.device, the hf backend, an unquantized base and no
gradient checkpointing on CPU; the talk's 4-bit unsloth setup on CUDA.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from radreport.config_loading import ConfigSection

# The stop bias's bounds, either side of 0; stop bias calibration never steps beyond them.
STOP_LOGIT_BIAS_LIMIT = 20.0
ALL_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# How retrieval-augmented prompts find their examples (radreport.llm.retrieval).
RetrievalMatch = Literal["characters", "words"]


class LLMSettings(ConfigSection):
    # Model and backend
    backend: Literal["auto", "unsloth", "hf"] = "auto"
    base_model: str = "bundled:smollm2-135m-instruct"
    load_in_4bit: bool | Literal["auto"] = "auto"
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # The longest training example in tokens (prompt, report and end-of-sequence token);
    # longer ones are cut or left out by `overlength`. "auto": the longest of the train
    # split, no longer than the base model's context (radreport.llm.token_budgets), resolved
    # when the training table is made; the model version stores the number.
    max_seq_length: PositiveInt | Literal["auto"] = 256
    # The hf backend's attention kernel while training ("auto": SDPA on CUDA,
    # "grouped_eager_or_sdpa" on CPU: radreport.llm.grouped_attention); unsloth brings its own.
    attention: Literal["auto", "sdpa", "eager", "grouped_eager_or_sdpa"] = "auto"
    overlength: Literal["truncate", "drop"] = "truncate"

    # LoRA
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # Names of the model's linear layers (the last part of their module path); each must
    # match at least one, checked when the model loads (radreport.llm.lora_targets).
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_LINEAR_LAYERS), min_length=1)
    # The hf backend runs each plain LoRA layer (no dropout, unquantized base) as one
    # function with the scaling and both sums folded into its products
    # (radreport.llm.fused_lora); False keeps PEFT's own forward. unsloth has its own.
    fused_lora: bool = True
    # The hf backend runs RMSNorm, the MLP's SiLU-gated product and the LM head's softmax
    # cross-entropy as compiled CPU kernels (radreport.llm.fused_rms_norm, fused_swiglu,
    # chunked_head_loss); False keeps transformers' modules and PyTorch operations. Other
    # devices and dtypes always keep them.
    fused_elementwise: bool = True

    # Optimisation (AdamW)
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    # NEFTune (Jain et al. 2023): uniform noise of at most alpha / sqrt(tokens x hidden size)
    # added to the input embeddings at every training step, never at evaluation or
    # generation (transformers' Trainer hook). None: no noise. The paper's runs used 5-15.
    neftune_noise_alpha: float | None = Field(None, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    # > 0 overrides epochs; -1 (or below) trains for epochs. 0 is refused: transformers
    # would train one step.
    max_steps: int = -1
    per_device_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    # Recompute activations in the backward pass instead of keeping them. "auto": on CUDA
    # and with unsloth; with hf on the CPU only where the longest batch (per_device_batch_size
    # x max_seq_length) would keep more than half the memory available
    # (radreport.llm.training_memory), since there it costs 1.04-1.33x the step time
    # (benchmarks/train_memory_by_length.py, benchmarks/train_throughput.py).
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    batching: Literal["padded", "length_grouped", "padding_free"] = "length_grouped"
    # Padded batches are as long as their longest row rounded up to this multiple, so batch
    # shapes repeat and the CPU's matrix library reuses the kernels it generated for them
    # ("auto": 16 on CPU, 1 on CUDA; radreport.llm.device). Padding-free batches ignore it.
    pad_to_multiple_of: PositiveInt | Literal["auto"] = "auto"
    seed: int = Field(42, ge=0, lt=2**32)  # numpy's seed range
    # None = all cores; 1 is faster on a CPU shared with other busy processes (benchmark).
    num_threads: int | None = Field(None, gt=0)

    # Evaluation, checkpoints, early stopping
    eval_steps: int = Field(50, gt=0)
    save_steps: int = Field(50, gt=0)
    logging_steps: int = Field(10, gt=0)
    early_stopping_patience: int | None = Field(3, gt=0)
    save_total_limit: int = Field(2, gt=0)
    # Validation impressions written out greedily at every evaluation (0: none), so the
    # text behind each validation loss can be read; short, as they cost training time.
    eval_samples: int = Field(4, ge=0)
    eval_sample_max_new_tokens: int = Field(96, gt=0)
    # The validation loss (and early stopping) on at most this many val studies, a sample
    # drawn by `seed` where the split is larger (radreport.llm.validation_sample): on a large
    # archive every evaluation over the whole split would cost more than the training
    # between two. None: every val study.
    eval_loss_studies: PositiveInt | None = 1000

    # Generation
    # The most tokens a report may take; it is cut there. "auto": the longest train report's,
    # end-of-sequence token included, resolved as max_seq_length's is.
    max_new_tokens: PositiveInt | Literal["auto"] = 256
    # Decode batches hold at most generation_batch_size prompts, longest first, and their
    # rows' key/value caches at most generation_batch_tokens positions (each MBR candidate
    # and beam is a row; the native decoder keeps a prompt's positions once for all its
    # candidates), so a batch of long prompts takes fewer of them and decoding's memory
    # stays bounded however long prompts and reports are. "auto": half the memory available
    # (the GPU's free memory on CUDA) when the generator first decodes, over what its cache
    # takes per position (radreport.llm.cache_budget). A prompt whose own rows need more
    # decodes alone, with a warning.
    generation_batch_size: PositiveInt = 16
    generation_batch_tokens: PositiveInt | Literal["auto"] = "auto"
    num_beams: int = Field(1, gt=0)
    # > 0: greedy decoding never repeats an n-gram of its own output (loops of a small
    # model); the prompt's text, e.g. a retrieved example, may still be copied.
    no_repeat_ngram_size: int = Field(0, ge=0)
    # Added to the stop tokens' logits before every choice (greedy, beams, MBR's samples):
    # below 0 a report ends later. Maximum-likelihood decoding favours short outputs, and
    # corpus BLEU's brevity penalty charges a corpus of short reports for every missing word.
    stop_logit_bias: float = Field(0.0, ge=-STOP_LOGIT_BIAS_LIMIT, le=STOP_LOGIT_BIAS_LIMIT)
    # > 0: after training, the stop bias is chosen for the trained model on up to this many
    # validation studies (radreport.llm.stop_bias_calibration): from stop_logit_bias it
    # moves by stop_bias_calibration_step, at most stop_bias_calibration_max_tries decodes,
    # until the reports' length ratio to the references crosses 1, and the bias whose ratio
    # is closest to 1 writes the evaluation's reports and is stored with the model version.
    # Each try costs one decode of those studies. 0: stop_logit_bias as given.
    stop_bias_calibration_studies: int = Field(0, ge=0)
    stop_bias_calibration_step: float = Field(0.5, gt=0.0, le=5.0)
    stop_bias_calibration_max_tries: int = Field(5, ge=2)
    # > 1: minimum Bayes risk decoding. Per impression, the greedy decode and
    # (mbr_candidates - 1) epsilon-sampled reports; the one with the highest mean BLEU
    # against the others is returned. Costs about mbr_candidates times greedy's decode time.
    mbr_candidates: int = Field(0, ge=0)
    mbr_epsilon: float = Field(0.02, gt=0, lt=1)
    # MBR selection also scores each candidate against the retrieved examples' reports
    # (pseudo-references only: the report returned is always one the model wrote).
    mbr_example_references: bool = False
    # Above 0, MBR selection adds this times each candidate's agreement with its impression:
    # the F1 between the findings the evaluation's labeler reads in the two. BLEU alone is
    # blind to what a sentence asserts, so it may keep a draft that contradicts the
    # radiologist's impression among candidates it rates alike.
    mbr_impression_weight: float = Field(0.0, ge=0.0)
    retrieval_k: int = Field(0, ge=0)
    # How the retrieved studies are found: TF-IDF over the impressions' character 2- to
    # 5-grams, which keep the writer's numbering and punctuation and so find the reports of
    # the same template (radreport.llm.retrieval), or over their words and word pairs, the
    # earlier rule (versions trained before this setting existed retrieve by words).
    retrieval_match: RetrievalMatch = "characters"
    # "onnxruntime": greedy decoding on the CPU through an ONNX Runtime GenAI export of the
    # model (adapter merged, fp32; exported once, cached by content). The same tokens as
    # fp32 PyTorch, about 2x faster per report here; beams and MBR need "torch".
    # "native": greedy and MBR decode steps in our own C kernel (Llama architectures on the
    # CPU; compiled with the machine's C compiler at first use; prompts encoded and beams
    # searched by PyTorch). Its matrices are bfloat16 unless compute_dtype is
    # float32, which writes the same tokens as fp32 PyTorch; with bfloat16 matrices the
    # products (prompt encoding and steps) are bf16 where the CPU computes it natively (or
    # compute_dtype bfloat16), summed in fp32. A
    # single report decodes at about the memory copy rate of its weights
    # (benchmarks/results/generation.md).
    # "auto": "native" where it can run (a Llama model on the CPU, a C compiler), else
    # "torch" (a GPU; a quantized or other model, with a warning that says why). On IU X-Ray
    # with MBR over 8, native wrote reports 3.2-3.9x faster than torch, 1.46x since torch's
    # decode steps stopped copying the cache (BENCHMARKS.md).
    decoder: Literal["auto", "torch", "onnxruntime", "native"] = "auto"

    def require_token_budgets(self, *names: str) -> None:
        """ValueError where one of the named budgets is still "auto": it is a number only once
        the training data has been measured (radreport.llm.token_budgets)."""
        for name in names:
            if getattr(self, name) == "auto":
                raise ValueError(
                    f"llm.{name} is 'auto', which the training data sizes: resolve it with "
                    "radreport.llm.prompt_table.resolve_token_budgets (the pipeline does so "
                    "when it makes the training table) or give a number"
                )

    @model_validator(mode="after")
    def _checkpoints_fall_on_evaluations(self) -> LLMSettings:
        # Early stopping restores the best checkpoint by validation loss, so every checkpoint
        # must come with an evaluation.
        if self.early_stopping_patience is not None and self.save_steps % self.eval_steps:
            raise ValueError(
                f"save_steps ({self.save_steps}) must be a multiple of eval_steps "
                f"({self.eval_steps}) when early stopping is on"
            )
        return self

    @model_validator(mode="after")
    def _max_steps_is_what_it_says(self) -> LLMSettings:
        if self.max_steps == 0:
            raise ValueError(
                "max_steps 0 would train one step: give a number of steps above 0, or -1 to "
                "train for `epochs`"
            )
        return self

    @model_validator(mode="after")
    def _decoding_options_fit_together(self) -> LLMSettings:
        if self.decoder == "onnxruntime" and (self.num_beams > 1 or self.mbr_candidates > 1):
            raise ValueError(
                "decoder 'onnxruntime' decodes greedily: num_beams and mbr_candidates above 1 "
                "need decoder 'torch'"
            )
        if self.decoder == "native" and self.compute_dtype == "float16":
            raise ValueError(
                "decoder 'native' reads its matrices in float32 or bfloat16: set compute_dtype "
                "to auto, bfloat16 or float32"
            )
        if self.mbr_example_references and (self.mbr_candidates < 2 or self.retrieval_k == 0):
            raise ValueError(
                "mbr_example_references needs MBR decoding (mbr_candidates > 1) and retrieved "
                "examples (retrieval_k > 0)"
            )
        if self.mbr_impression_weight and self.mbr_candidates < 2:
            raise ValueError("mbr_impression_weight needs MBR decoding (mbr_candidates > 1)")
        if self.mbr_candidates > 1 and self.num_beams > 1:
            raise ValueError("mbr_candidates > 1 samples its candidates: it needs num_beams 1")
        if self.no_repeat_ngram_size == 1 or (self.no_repeat_ngram_size and self.num_beams > 1):
            raise ValueError(
                "no_repeat_ngram_size must be 0 or at least 2, and applies to greedy decoding "
                "only (num_beams 1)"
            )
        return self
