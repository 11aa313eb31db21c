"""The validation loss's studies: every one up to llm.eval_loss_studies, a seeded sample above."""

from __future__ import annotations

from radreport.llm.finetune import prepare_training
from radreport.llm.settings import LLMSettings
from radreport.llm.validation_sample import validation_loss_rows
from tests.llm.tiny_training import ROWS, tiny_settings

VAL = [{"impression": f"Finding {i}.", "report": f"Report {i}."} for i in range(50)]


def test_a_split_within_the_limit_is_used_whole():
    assert validation_loss_rows(VAL, 50, seed=0) is VAL
    assert validation_loss_rows(VAL, None, seed=0) is VAL


def test_a_larger_split_gives_a_seeded_sample_in_its_own_order():
    sample = validation_loss_rows(VAL, 10, seed=42)
    positions = [VAL.index(row) for row in sample]
    assert len(set(positions)) == 10
    assert positions == sorted(positions)
    assert validation_loss_rows(VAL, 10, seed=42) == sample  # the same every run
    assert validation_loss_rows(VAL, 10, seed=1) != sample
    # Not the first rows: a split's order can follow time or site.
    assert positions != list(range(10))


def test_training_measures_its_validation_loss_on_the_sample(tiny_llama_dir, tmp_path):
    settings = LLMSettings(**tiny_settings(tiny_llama_dir, eval_loss_studies=3))
    run = prepare_training(ROWS, ROWS[:8], settings, tmp_path / "run")
    try:
        assert len(run.val_data.examples) == 3
        assert len(run.trainer.eval_dataset) == 3
    finally:
        run.run_folder.release()
