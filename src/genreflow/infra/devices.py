"""Where training runs: the GPU when there is one (or when asked), else the CPU."""

from __future__ import annotations

from typing import Any

from genreflow.pipeline.errors import ParameterError

DEVICES = ("auto", "cpu", "gpu")


def select_device(requested: str) -> str:
    """Make TensorFlow use ``requested`` and return what it got (``"gpu"`` or ``"cpu"``).

    Mixed precision (float16 compute, float32 softmax) is switched on for a GPU only: on a CPU it
    is slower and no more accurate.

    Raises
    ------
    ParameterError
        ``gpu`` was asked for on a machine without one.
    """
    import keras
    import tensorflow as tf

    if requested not in DEVICES:
        raise ParameterError(f"--device must be one of {DEVICES}, got {requested!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "gpu" and not gpus:
        raise ParameterError("--device gpu: TensorFlow sees no GPU here (install genreflow[gpu] on a GPU host)")
    if requested == "cpu" or not gpus:
        tf.config.set_visible_devices([], "GPU")
        keras.mixed_precision.set_global_policy("float32")
        return "cpu"
    keras.mixed_precision.set_global_policy("mixed_float16")
    return "gpu"


def gpu_resources(client: Any) -> bool:
    """True when some worker of a Dask cluster advertises a ``GPU`` resource."""
    workers = client.scheduler_info().get("workers", {})
    return any(worker.get("resources", {}).get("GPU", 0) >= 1 for worker in workers.values())


def limit_cpu_threads(threads: int | None) -> None:
    """Give TensorFlow ``threads`` CPU threads (None: its default, all cores).

    Worker processes sharing a host should split its cores: two workers each using all of them ran
    the scoring flow 7 % slower here. Only possible before TensorFlow's runtime starts; later it keeps
    what it has.
    """
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process
        pass


def cpu_threads_per_worker(workers: int) -> int:
    """This host's cores split between ``workers`` local worker processes (at least one each)."""
    import os

    return max(1, (os.cpu_count() or 1) // max(1, workers))


def dask_worker() -> dict[str, Any] | None:
    """The Dask worker running the calling task (its address, name and declared resources, such as
    ``GPU``), or None outside one (a task running in the flow's own process)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return {"address": worker.address, "name": str(worker.name), "resources": dict(worker.state.total_resources)}
