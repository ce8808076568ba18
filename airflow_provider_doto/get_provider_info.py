"""Provider metadata, declared as data (read by Airflow through the ``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_provider_doto import __version__

# The same URL as pyproject's [project.urls] Documentation (a test holds them together).
DOCUMENTATION_URL = "https://pypi.org/project/airflow-provider-doto/"

# The connection form, declared once: Airflow 3.2+ reads it from here, and DotoHook's 3.1-era
# get_connection_form_widgets() / get_ui_field_behaviour() are built from the same data.
CONN_FIELDS: dict[str, Any] = {
    "account_id": {
        "label": "Account ID",
        "schema": {"type": "integer"},
        "description": "Your Doto account id (the number in /app/accounts/<id>/).",
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["integer", "null"], "default": 30, "minimum": 1},
    },
    "flavor": {
        "label": "Server flavor",
        "schema": {"type": "string", "enum": ["auto", "doto", "chatwoot"], "default": "auto"},
        "description": (
            "How the server reads before/after: auto (detect once), doto (Unix timestamps, as Doto's "
            "reference says) or chatwoot (message ids, as Chatwoot's code does)."
        ),
    },
    "max_requests_per_minute": {
        "label": "Max requests per minute",
        "schema": {"type": ["integer", "null"], "default": 2700, "minimum": 0},
        "description": (
            "This process's pace on the connection, under the server's rate limit (Chatwoot: 3000 a "
            "minute per client IP); 0 turns pacing off."
        ),
    },
    "rate_limit_wait_seconds": {
        "label": "Rate-limit wait (seconds)",
        "schema": {"type": ["integer", "null"], "default": 300, "minimum": 0},
        "description": "How long a throttle (HTTP 429) may last before the requests still waiting fail.",
    },
    "rate_limit_window_seconds": {
        "label": "Rate-limit window (seconds)",
        "schema": {"type": ["integer", "null"], "default": 60, "minimum": 1},
        "description": "The server's throttle window; a 429 without Retry-After is waited out to its end.",
    },
    "max_upload_mb": {
        "label": "Max upload (MB)",
        "schema": {"type": ["integer", "null"], "default": 40, "minimum": 1},
        "description": (
            "The largest attachment a message may carry, per file (Chatwoot's default 40); set it to "
            "your server's limit. Checked before anything is sent."
        ),
    },
}
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login", "extra"],
    "relabeling": {"host": "Base URL", "password": "API Token"},
    "placeholders": {
        "host": "https://app.usendoto.com",
        "password": "Doto API access token",
        "account_id": "1",
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-doto",
        "name": "Doto",
        "description": "Doto customer messaging: send, delete and wait for conversation messages.",
        "documentation-url": DOCUMENTATION_URL,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Doto",
                "external-doc-url": "https://app.usendoto.com",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "Doto",
                "python-modules": [
                    "airflow_provider_doto.operators.doto",
                    "airflow_provider_doto.operators.batch",
                    "airflow_provider_doto.operators.conversations",
                ],
            }
        ],
        "sensors": [{"integration-name": "Doto", "python-modules": ["airflow_provider_doto.sensors.doto"]}],
        "hooks": [{"integration-name": "Doto", "python-modules": ["airflow_provider_doto.hooks.doto"]}],
        "triggers": [
            {
                "integration-name": "Doto",
                "python-modules": [
                    "airflow_provider_doto.triggers.doto",
                    "airflow_provider_doto.triggers.delivery",
                ],
            }
        ],
        "notifications": ["airflow_provider_doto.notifications.doto.DotoNotifier"],
        "extra-links": ["airflow_provider_doto.links.doto.DotoConversationLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_doto.hooks.doto.DotoHook",
                "hook-name": "Doto",
                "connection-type": "doto",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
