"""The MLflow side, for both tasks and knowing neither: experiments, the registry's champion rule, saved bundles."""

from pipelines.tracking.experiments import (
    configure,
    experiment_for,
    log_dataset,
    log_history,
    log_steps,
    open_experiment,
)

__all__ = ["configure", "experiment_for", "log_dataset", "log_history", "log_steps", "open_experiment"]
