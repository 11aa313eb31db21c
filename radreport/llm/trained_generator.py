"""The generator of a trained adapter, decoding as the pipeline that trained it evaluated it:
its settings' decoding on their base model, reports ending before a second report by the
marks its training reports do not have. One place, so that the pipeline's steps, the CLI
and the benchmarks cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from radreport.llm.base_model import resolve_base_model
from radreport.llm.generate import ReportGenerator
from radreport.llm.prompt_table import train_report_shape
from radreport.llm.settings import LLMSettings


def trained_report_generator(
    settings: LLMSettings, adapter_dir: Path, alpaca_table: pd.DataFrame
) -> ReportGenerator:
    """`alpaca_table` is the one the adapter was trained on (its train split gives the
    report shape). NativeDecoderUnavailable when `settings.decoder` is native and cannot
    run here."""
    generator = ReportGenerator.from_settings(
        settings, resolve_base_model(settings.base_model), adapter_dir
    )
    return generator.follow_report_shape(train_report_shape(alpaca_table))
