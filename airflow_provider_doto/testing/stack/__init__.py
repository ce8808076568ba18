"""The local Airflow stack and the demo: development tools, real Airflow against the Doto emulator.

For developers of this provider (and anyone trying it out): the demo (``scripts/demo.sh``, i.e.
``python -m airflow_provider_doto.testing.stack.demo``) runs one example DAG with ``airflow dags
test``; the stack runs a whole local Airflow deployment, each component its own process. The stack
starts one way: ``python -m airflow_provider_doto.testing.stack`` on the command line, which wraps
:class:`AirflowStack`, the context manager the deployment and distributed tests and the benchmarks
use. Shipped in the wheel so both run from a plain ``pip install``.
"""

from airflow_provider_doto.testing.stack.airflow_stack import AirflowStack

__all__ = ["AirflowStack"]
