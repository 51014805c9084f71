"""decisionflow analytics: how the deployed models do, for analysts and the evaluate DAG.

- :mod:`analytics.evaluation`: quality metrics per model version and policy arm on labelled
  decisions; decision rates.
- :mod:`analytics.monitoring`: the evaluate DAG's steps (window extract, quality, PSI drift).
- :mod:`analytics.reports`: the HTML/CSV/Parquet analyst reports and their index.

May import ``models``, ``decisioning`` and ``storage``; never ``pipelines``, ``workers`` or
the DAGs. Rendering (matplotlib, Jinja2) lives here, never in the decision core.
"""
