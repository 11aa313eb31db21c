"""radreport command line: every user action is a subcommand.

Heavy libraries (torch, transformers, unsloth, zenml) are imported inside the
commands, never at module level, so `python run.py --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_config_or_exit(path: Path):
    from radreport.config import load_run_config
    from radreport.config_loading import ConfigError

    try:
        return load_run_config(path)
    except ConfigError as exc:
        fail(str(exc), 2)


@click.group()
def cli() -> None:
    """Draft detailed radiology reports from CT studies and impressions, reproducibly."""


@cli.command()
def setup() -> None:
    """Register the MLflow tracker and registry in a ZenML stack and activate it."""
    from pipelines.stack import ensure_stack

    changes = ensure_stack()
    if changes:
        for change in changes:
            click.echo(f"  {change}")
    else:
        click.echo("Stack already set up: nothing changed.")


if __name__ == "__main__":
    cli()
