"""What differs between the Airflow versions of the test matrix (README, "Airflow versions").

Tests branch on these names, so each difference is asserted on the versions where it applies.
"""

from __future__ import annotations

import airflow
from packaging.version import Version

AIRFLOW = Version(Version(airflow.__version__).base_version)
# Airflow 3.3 added the task state store (the reschedule-mode sensor's cursor) and the asset state
# store (the AssetWatcher's cursor); before, those cursors live only as long as their process.
HAS_STATE_STORES = Version("3.3") <= AIRFLOW
# Airflow 3.1's UI builds the connection form from the hook's widgets; 3.2+ from conn-fields.
FORM_FROM_HOOK_WIDGETS = Version("3.2") > AIRFLOW
# Airflow 3.3's dag.test() re-syncs the DAG's bundle on every call; before, only a DAG without a
# version yet (so an asset watcher added by another test's parse may be missing).
DAG_TEST_RESYNCS = Version("3.3") <= AIRFLOW
