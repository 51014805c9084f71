"""The `decisionflow` command line: one group, sub-commands registered per area."""

from __future__ import annotations

import importlib
import logging

import click

__all__ = ["cli", "main"]

# Each module exposes ``register(group)``; a module that is not there yet is skipped.
_COMMAND_MODULES = (
    "workers.commands.models_cmd",
    "workers.commands.stream_cmd",
    "workers.commands.report_cmd",
    "workers.commands.replay_cmd",
    "workers.commands.sink_cmd",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="WARNING", show_default=True, help="Python log level.")
def cli(log_level: str) -> None:
    """decisionflow: Kafka events in, model scores and policy decisions out."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(cli)


_register_all()


def main() -> None:
    """Console-script entry point: known failures print one line and exit 2."""
    from workers.cli_errors import explain

    try:
        cli()
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        logging.getLogger("decisionflow").debug("traceback", exc_info=True)
        click.echo(f"decisionflow: error: {message}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover - `python -m workers.cli`
    main()
