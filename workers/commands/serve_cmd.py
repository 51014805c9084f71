"""`decisionflow serve`: the request/reply HTTP decision API (FastAPI on uvicorn)."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command()
@click.option("--host", default=None, help="Bind address (default: api.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: api.port, 18000).")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=False,
    help="Serve without API keys (local development only; refused otherwise when no key is "
    "configured).",
)
def serve(host: str | None, port: int | None, insecure_no_auth: bool) -> None:
    """Serve POST /v1/decisions and GET /v1/decisions/{event_id} (OpenAPI docs at /docs).

    Events are validated like the workers do, published to the events topic and answered
    with the workers' decision read back from the decisions topic (202 after the wait).
    Keys: DECISIONFLOW_API__KEYS='{"name": "key"}'; more settings in docs/api.md.
    """
    import uvicorn

    from workers.api.app import NO_KEYS, build_app
    from workers.cli_errors import require_kafka
    from workers.settings import ApiSettings

    settings = ApiSettings()
    if not settings.api.keys and not insecure_no_auth:
        raise click.UsageError(NO_KEYS)
    if insecure_no_auth:
        click.echo("decisionflow serve: WARNING: no authentication (--insecure-no-auth)", err=True)
    require_kafka(settings.kafka.bootstrap_servers)
    app = build_app(settings, insecure_no_auth=insecure_no_auth)
    uvicorn.run(
        app,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=int(settings.api.max_wait_s) + 5,
    )


def register(group: click.Group) -> None:
    """Add the serve command to the CLI group."""
    group.add_command(serve)
