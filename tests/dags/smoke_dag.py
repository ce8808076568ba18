from __future__ import annotations
import pendulum
from airflow.sdk import DAG
from airflow_provider_doto.operators.doto import SendMessageOperator, ListMessagesOperator
from airflow_provider_doto.sensors.doto import NewMessageSensor

with DAG("smoke", schedule=None, start_date=pendulum.datetime(2026,1,1), catchup=False) as dag:
    s = SendMessageOperator(task_id="send", conversation_id="{{ dag_run.conf['cid'] }}", content="hello {{ run_id }}")
    w = NewMessageSensor(task_id="wait", conversation_id="{{ dag_run.conf['cid'] }}", poke_interval=1, timeout=30, content_pattern="refund")
    wd = NewMessageSensor(task_id="waitd", conversation_id="{{ dag_run.conf['cid'] }}", poke_interval=1, timeout=30, content_pattern="refund", deferrable=True)
    l = ListMessagesOperator(task_id="list", conversation_id="{{ dag_run.conf['cid'] }}")
    s >> w >> wd >> l
