"""Runs an exported DAG on real Apache Airflow for the tests and reports the outcome.

    python airflow_run.py AIRFLOW_HOME DAGS_FOLDER DAG_ID CONF_JSON

Uses a SQLite metadata database in AIRFLOW_HOME (`airflow db migrate`), runs the DAG
once with `airflow dags test` (no scheduler or web server), then prints one JSON
line: {"exit": ..., "run_id": ..., "state": ..., "tasks": {task_id: state}} (a mapped
task's instances as task_id[map_index]).
"""
import json
import os
import subprocess
import sys

home, dags, dag_id, conf = sys.argv[1:5]
env = dict(os.environ, AIRFLOW_HOME=home, AIRFLOW__CORE__DAGS_FOLDER=dags, AIRFLOW__CORE__LOAD_EXAMPLES="False",
           AIRFLOW__CORE__UNIT_TEST_MODE="False")
airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
log = open(os.path.join(home, "airflow-run.log"), "a")
subprocess.run([airflow, "db", "migrate"], env=env, stdout=log, stderr=log, check=True)
test = subprocess.run([airflow, "dags", "test", dag_id, "--conf", conf], env=env, stdout=log, stderr=log)

os.environ.update(env)
from airflow.models import DagRun  # noqa: E402  (after AIRFLOW_HOME is set)
from airflow.utils.session import create_session  # noqa: E402

with create_session() as session:
    run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
    # A mapped task's instances as TASK[INDEX].
    tasks = {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
             for ti in run.get_task_instances(session=session)} if run else {}
    print(json.dumps({"exit": test.returncode, "run_id": run.run_id if run else None,
                      "state": str(run.state) if run else None, "tasks": tasks}))
