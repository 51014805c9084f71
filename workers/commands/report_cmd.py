"""`decisionflow report`: write the analyst reports (evaluation, operations, drift) of a day."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command()
@click.option(
    "--flow",
    "flow_name",
    default=None,
    help="Decision flow (name or YAML path): its spec, model, decisions and reports folder "
    "(REPORTS_DIR/<flow>).",
)
@click.option("--day", default=None, help="Report day YYYY-MM-DD (UTC); default today.")
@click.option(
    "--reports-dir",
    default=None,
    help="Root of the reports (default DECISIONFLOW_REPORTS_DIR, else var/reports).",
)
@click.option(
    "--database-url",
    default=None,
    help="The store's SQLAlchemy URL (default DECISIONFLOW_DATABASE_URL / settings).",
)
@click.option("--registry-url", default=None, help="Model registry (default from settings).")
@click.option("--model-name", default=None, help="Registered model name (default settings).")
@click.option("--spec", "spec_name", default=None, help="Feature spec [default: credit_data].")
@click.option("--window-days", type=float, default=7.0, show_default=True)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--gain-good-approved", type=float, default=1.0, show_default=True)
@click.option("--loss-bad-approved", type=float, default=5.0, show_default=True)
@click.option("--review-cost", type=float, default=0.3, show_default=True)
def report(
    flow_name: str | None,
    day: str | None,
    reports_dir: str | None,
    database_url: str | None,
    registry_url: str | None,
    model_name: str | None,
    spec_name: str | None,
    window_days: float,
    threshold: float,
    gain_good_approved: float,
    loss_bad_approved: float,
    review_cost: float,
) -> None:
    """Build evaluation.html, operations.html and drift.html (+ CSV/Parquet tables) for DAY
    under REPORTS_DIR/DAY/ and refresh REPORTS_DIR/index.html.

    The same code runs in the evaluate and retrain DAGs.
    """
    from datetime import UTC, date, datetime

    from analytics.reports import build_reports
    from decisioning.thresholds import Costs
    from models import paths as layout
    from workers.settings import SinkSettings

    if day is not None:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--day") from None
    settings = SinkSettings()
    name = model_name or settings.model_name
    root = reports_dir or str(layout.reports_dir())
    only: str | None = None  # no flow named: every decision in the store
    if flow_name is not None:
        from decisioning.flow import load_flow

        flow = load_flow(flow_name)
        spec_name = spec_name or flow.spec
        name = only = model_name or flow.model_name
        if not reports_dir:
            root = str(layout.reports_dir() / layout.safe_part(flow.name))
    paths = build_reports(
        database_url or settings.database_url.get_secret_value(),
        root,
        day or datetime.now(UTC).date().isoformat(),
        registry=registry_url or settings.registry_url,
        model_name=name,
        spec=spec_name or "credit_data",
        flow_model=only,
        window_days=window_days,
        threshold=threshold,
        costs=Costs(
            gain_good_approved=gain_good_approved,
            loss_bad_approved=loss_bad_approved,
            review_cost=review_cost,
        ),
        reference_path=str(layout.reference_file(name)),
    )
    for kind, path in paths.items():
        click.echo(f"{kind:<11} {path}")


def register(group: click.Group) -> None:
    """Add `report` to the CLI group."""
    group.add_command(report)
