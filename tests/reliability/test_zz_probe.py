import time
from reliability_support import load_dag
def test_p(reliability_dags, emu, capfd):
    dag = load_dag(reliability_dags, "reliability_send_retry")
    for n in range(30):
        cid = emu.add_conversation()
        if n % 2: emu.inject("drop_after", method="POST")
        t = time.monotonic()
        dag.test(run_conf={"cid": cid, "n": n})
        with capfd.disabled(): print("DUR", n, round(time.monotonic() - t, 2))
