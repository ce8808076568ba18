"""Test tooling shipped with the provider, as two products:

``emulator``: a local Doto Messages API (real HTTP, Chatwoot-like knobs, fault injection) and its
pytest plugin. For users testing their own DAGs, and for this provider's tests and benchmarks.

``stack``: development tools that run real Airflow against the emulator: the local stack
(``python -m airflow_provider_doto.testing.stack``, :class:`~airflow_provider_doto.testing.stack.AirflowStack`)
and the demo (``python -m airflow_provider_doto.testing.stack.demo``, what ``scripts/demo.sh`` runs).
"""
