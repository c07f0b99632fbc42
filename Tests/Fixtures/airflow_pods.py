"""Loads an exported KubernetesPodOperator DAG as Airflow would and prints the pods
its tasks would ask Kubernetes for, without a cluster.

    python airflow_pods.py DAGS_FOLDER DAG_ID RUN_ID CONF_JSON

Prints one JSON line: {"import_errors": {...}, "pods": {task_id: pod}}, where each
pod is the V1Pod the task builds (as the Kubernetes API would receive it) after its
templates are rendered for a run RUN_ID with dag_run.conf CONF_JSON.
"""
import json
import os
import sys
import types

dags, dag_id, run_id, conf = sys.argv[1:5]
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from kubernetes.client import ApiClient  # noqa: E402

bag = DagBag(dag_folder=dags)
result = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "pods": {}}
dag = bag.dags.get(dag_id)
if dag is not None:
    client = ApiClient()
    for task in dag.tasks:
        context = {"run_id": run_id, "dag_run": types.SimpleNamespace(conf=json.loads(conf), run_id=run_id),
                   "params": dag.params.dump(), "dag": dag, "task": task, "ti": types.SimpleNamespace(try_number=1)}
        task.render_template_fields(context)
        pod = task.build_pod_request_obj(dry_run=True)
        result["pods"][task.task_id] = client.sanitize_for_serialization(pod)
print(json.dumps(result))
