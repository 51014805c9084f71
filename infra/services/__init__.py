"""The local stack's services, one module each (``kafka``, ``redis``, ``postgres``; Kafka's
broker layout, admin calls and SCRAM user in ``kafka_layout``, ``kafka_admin``,
``kafka_scram``), and the helpers they share (``common``): run directory, ports, process and
port checks.

``infra/stack.py`` imports this package as ``services`` (the script's own folder is first on
``sys.path`` when it runs), so modules here import each other relatively.
"""
