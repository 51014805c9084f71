"""The `decisionflow` command line: one group, sub-commands registered per area."""

from __future__ import annotations

import logging

import click

from workers.commands import (
    flow_cmd,
    models_cmd,
    policy_cmd,
    replay_cmd,
    report_cmd,
    serve_cmd,
    sink_cmd,
    stream_cmd,
)

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="WARNING", show_default=True, help="Python log level.")
def cli(log_level: str) -> None:
    """decisionflow: Kafka events in, model scores and policy decisions out."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")


for _module in (models_cmd, stream_cmd, report_cmd, replay_cmd, sink_cmd, serve_cmd):
    _module.register(cli)
flow_cmd.register(cli)
policy_cmd.register(cli)


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
