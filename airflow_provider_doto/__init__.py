"""Apache Airflow provider for Doto's Messages API.

Kept empty of imports on purpose: DAG parsing pays only for the modules a DAG file names.
"""

__version__ = "0.1.0"
