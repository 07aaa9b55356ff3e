"""The model registry and run lineage: ``log_model`` logs a checkpoint as an MLflow Model and registers it,
``describe_registered`` gives a registered model its description and aliases, and ``run_for_checkpoint`` finds
the training run that wrote a checkpoint.

Lineage: a training run is tagged with the md5 of the checkpoint it produced (``vaelab.checkpoint_md5``).
The figures and evaluate stages hash the checkpoint they load and log to exactly the run with that
tag (:func:`run_for_checkpoint`); a checkpoint with no such run (e.g. pulled with ``dvc pull`` into a
clone with an empty store) gets a new run linked by the same tag, never someone else's run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vaelab.tracking.provenance import run_tags
from vaelab.tracking.runs import recording
from vaelab.tracking.store import client, tracking_uri
from vaelab.tracking.switch import unless_off

log = logging.getLogger("vaelab.tracking")
# The tag of a training run naming the MLflow 3 logged model of its checkpoint: the evaluate stage links its
# metrics to that model (``log_metrics(model_id=...)``), so the model's page lists them.
MODEL_ID_TAG = "vaelab.model_id"


@unless_off((None, None))
def log_model(run_id: str, checkpoint: Path, example: Any, name: str, registered_name: str | None,
              version_tags: dict[str, str]) -> tuple[str | None, str]:
    """Log a checkpoint to ``run_id`` as the MLflow Model ``name`` (signature and input example from ``example``)
    and register it as a new version of ``registered_name`` (None: log it, register nothing); returns the version
    (None when not registered) and the logged model's id."""
    import mlflow
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    import vaelab

    with recording(f"logging the MLflow Model of run {run_id}"):
        x = np.asarray(example, dtype=np.float32)
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            # Models from code (pyfunc_model.py), not a pickled object: loading the model runs no pickle.
            info = mlflow.pyfunc.log_model(
                name=name, python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"checkpoint": str(checkpoint)},
                code_paths=[str(Path(vaelab.__file__).parent)], input_example=x,
                signature=ModelSignature(
                    # Any width: images for reconstruct/encode, codes for decode, one column for sample.
                    inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
                    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
                    params=ParamSchema([ParamSpec("method", "string", "reconstruct"), ParamSpec("seed", "long", 0)])),
                pip_requirements=[f"torch=={_version('torch')}", f"mlflow=={_version('mlflow')}", "numpy"])
        client().set_tag(run_id, MODEL_ID_TAG, info.model_id)
        if registered_name is None:
            return None, info.model_id
        version = mlflow.register_model(info.model_uri, registered_name, tags=version_tags)
        return version.version, info.model_id


@unless_off()
def describe_registered(registered_name: str, description: str, versions: dict[str, str],
                        aliases: dict[str, str]) -> None:
    """Say what ``registered_name`` is, what each version is (``versions``: version -> text), and point each
    alias at its version (``aliases``: alias -> version, e.g. ``champion`` and ``seed42``)."""
    with recording(f"describing registered model {registered_name}"):
        c = client()
        c.update_registered_model(registered_name, description=description)
        for version, text in versions.items():
            c.update_model_version(registered_name, version, description=text)
        for alias, version in aliases.items():
            _set_alias(c, registered_name, alias, version)


def _set_alias(c: Any, registered_name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``. Parallel queued experiments on one SQL server race to set the same alias
    (the store deletes, then inserts it), and the loser gets a unique-key violation: then the alias exists, and
    a second try moves it (the last experiment to finish owns it, as with no race)."""
    from mlflow.exceptions import MlflowException

    try:
        c.set_registered_model_alias(registered_name, alias, version)
    except MlflowException as err:
        if "unique" not in str(err).lower():
            raise
        c.set_registered_model_alias(registered_name, alias, version)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package).split("+")[0]


@unless_off("off")
def run_for_checkpoint(experiment_id: str, model: str, seed: int, md5: str, stage: str) -> str:
    """The training run that wrote the checkpoint with this md5, or a new run linked to it by tags.

    Among several (e.g. ``dvc repro -f`` re-trained the same weights), the newest finished one of the
    same DVC experiment wins. A new run is named ``<model>/seed<seed>`` and tagged ``vaelab.lineage =
    checkpoint-only``: it says the checkpoint came from elsewhere (a DVC remote), not from this store.
    """
    with recording("finding the training run of the checkpoint"):
        runs = client().search_runs(
            [experiment_id], filter_string=f"tags.`vaelab.checkpoint_md5` = '{md5}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=50)
    exp_name = os.environ.get("DVC_EXP_NAME")
    same_exp = [r for r in runs if r.data.tags.get("dvc.exp_name") == exp_name]
    if same_exp or runs:
        return (same_exp or runs)[0].info.run_id
    log.warning("%s seed %d: no run in %s wrote checkpoint %s; recording into a new run linked by its md5",
                model, seed, tracking_uri(), md5)
    tags = {**run_tags(model, stage), "seed": str(seed), "vaelab.run": "seed", "vaelab.checkpoint_md5": md5,
            "vaelab.lineage": "checkpoint-only"}
    with recording("creating a run for a pulled checkpoint"):
        run = client().create_run(experiment_id, tags=tags, run_name=f"{model}/seed{seed}")
        client().set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
