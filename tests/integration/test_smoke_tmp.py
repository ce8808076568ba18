import threading, time, shutil, os
from airflow_provider_doto.testing import DotoEmulator
def test_smoke(airflow_db, tmp_path, monkeypatch):
    with DotoEmulator(token="SEKRET") as emu:
        monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json())
        cid = emu.add_conversation()
        emu.add_message(cid, "I want a refund", message_type="incoming", created_at=int(time.time())-1000)
        def later():
            time.sleep(3); emu.add_message(cid, "refund please", message_type="incoming")
        threading.Thread(target=later).start()
        from airflow.dag_processing.dagbag import DagBag
        import importlib.util
        spec = importlib.util.spec_from_file_location("smoke_dag", "tests/dags/smoke_dag.py")
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        dag = mod.dag
        dr = dag.test(run_conf={"cid": cid})
        print(dr.state)
        for m in emu.messages(cid): print(m["id"], m["message_type"], m["content"], m["created_at"], m.get("content_attributes"))
        print([ (r.method, r.path, r.query) for r in emu.requests])
        assert dr.state == "success"
