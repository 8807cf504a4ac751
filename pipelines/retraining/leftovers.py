"""What a dead pass left half-done, closed by the next pass (or the scheduler that takes its lease over): a pass
run still RUNNING while another pass holds the lease belongs to a process that died (killed, out of memory, its
host gone), since a live pass keeps its lease.

Its parent run ends KILLED with the reason, its RUNNING child runs and challenger training runs end FAILED, and a
version it registered but never decided on (READY, no ``decision`` tag: the process died between registering and
the gate) is tagged ``decision: abandoned``, so that nobody reads it as a real outcome. ``@champion`` is never
touched: the gate moves it only after it has written its decision.
"""

from __future__ import annotations

import logging

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from pipelines.retraining.facts import FAILURE_TAG, HOLDER_TAG, PASS_TAG
from pipelines.tracking.registry import all_pages

log = logging.getLogger(__name__)

ABANDONED = "abandoned"  # the decision of a version whose pass died before the gate decided


def close_dead_passes(client: MlflowClient, experiment_id: str, by: str) -> list[str]:
    """Close every pass run of the experiment that is RUNNING but ``by`` (the caller's pass, which holds the
    lease); returns their run ids."""
    dead = [
        run
        for run in all_pages(
            client.search_runs, [experiment_id], f"tags.`{HOLDER_TAG}` LIKE '%' and attributes.status = 'RUNNING'"
        )
        if run.info.run_id != by
    ]
    if not dead:
        return []
    experiments = [e.experiment_id for e in all_pages(client.search_experiments, view_type=ViewType.ALL)]
    for run in dead:
        pass_id = run.info.run_id
        reason = f"its process died (killed, out of memory or its host lost) before the pass ended; closed by pass {by}"
        children = list(
            all_pages(
                client.search_runs,
                [experiment_id],
                f"tags.mlflow.parentRunId = '{pass_id}' and attributes.status = 'RUNNING'",
            )
        )
        trained = list(
            all_pages(client.search_runs, experiments, f"tags.`{PASS_TAG}` = '{pass_id}'", run_view_type=ViewType.ALL)
        )
        for leftover in children + [t for t in trained if t.info.status == "RUNNING"]:
            client.set_tag(leftover.info.run_id, FAILURE_TAG, reason)
            client.set_terminated(leftover.info.run_id, "FAILED")
        for training in trained:
            for version in client.search_model_versions(f"run_id = '{training.info.run_id}'"):
                if "decision" not in version.tags:
                    client.set_model_version_tag(version.name, version.version, "decision", ABANDONED)
                    client.set_model_version_tag(
                        version.name, version.version, "abandoned_reason", f"the pass {reason}"
                    )
                    log.warning(
                        "%s version %s: abandoned (its pass %s died before deciding)",
                        version.name,
                        version.version,
                        pass_id,
                    )
        client.set_tag(pass_id, FAILURE_TAG, reason)
        client.set_terminated(pass_id, "KILLED")
        log.warning("retraining pass %s was left running by a process that died; marked KILLED", pass_id)
    return [run.info.run_id for run in dead]
