"""Runs radreport.llm.finetune in its own process, for tests that kill it or import unsloth.

    python tests/llm/finetune_worker.py JOB.json   (prints the result as one JSON line)

JOB.json: {"rows": [...], "output_dir": ..., "settings": {...LLMSettings fields}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    from radreport.llm.finetune import finetune
    from radreport.llm.settings import LLMSettings

    rows = job["rows"]
    result = finetune(rows, rows[:4], LLMSettings(**job["settings"]), job["output_dir"])
    print(
        json.dumps(
            {
                "adapter_dir": str(result.adapter_dir),
                "metrics": result.metrics,
                "resumed_from_step": result.resumed_from_step,
                "restored": result.restored,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
