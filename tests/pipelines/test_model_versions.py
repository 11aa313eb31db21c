"""A model version's stored settings turned back into the settings it decodes with."""

from __future__ import annotations

from pipelines.model_versions import generation_settings
from radreport.llm.settings import LLMSettings


def test_versions_from_before_retrieval_match_keep_retrieving_by_words():
    stored = LLMSettings(retrieval_k=3).model_dump()
    del stored["retrieval_match"]  # what versions trained before the setting hold
    assert generation_settings({"llm_settings": stored}).retrieval_match == "words"
    # A version that stored its rule keeps it; new versions store the default, characters.
    stored["retrieval_match"] = "characters"
    assert generation_settings({"llm_settings": stored}).retrieval_match == "characters"
    assert LLMSettings().retrieval_match == "characters"


def test_a_calibrated_stop_bias_replaces_the_configured_one():
    stored = LLMSettings(stop_logit_bias=-2.5).model_dump()
    metadata = {"llm_settings": stored, "stop_bias_calibration": {"chosen_bias": -1.5}}
    assert generation_settings(metadata).stop_logit_bias == -1.5
