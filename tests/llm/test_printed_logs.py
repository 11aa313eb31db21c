"""The Trainer's printed logs go to stderr: stdout is the run's report alone."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer, TrainingArguments

from radreport.llm.printed_logs import print_logs_on_stderr


@pytest.mark.parametrize("disable_tqdm", [False, True])  # the progress bar's, the printer's
def test_the_trainers_log_lines_are_printed_on_stderr(tmp_path, capsys, disable_tqdm):
    args = TrainingArguments(tmp_path, report_to=[], disable_tqdm=disable_tqdm, max_steps=2)
    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args)
    print_logs_on_stderr(trainer)
    trainer.callback_handler.on_train_begin(args, trainer.state, trainer.control)
    trainer.log({"eval_loss": 1.25})
    said = capsys.readouterr()
    assert said.out == ""
    assert "'eval_loss': '1.25'" in said.err
