from distributed import Client, LocalCluster

from genreflow.infra.devices import gpu_resources


def test_gpu_workers_are_recognised_by_their_dask_resource():
    for resources, expected in (({"GPU": 1}, True), (None, False)):
        with (
            LocalCluster(n_workers=1, processes=False, resources=resources, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            assert gpu_resources(client) is expected


def test_local_workers_split_the_cores_and_tensorflow_takes_the_limit(monkeypatch):
    import subprocess
    import sys

    from genreflow.infra import devices

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [devices.cpu_threads_per_worker(n) for n in (1, 2, 3, 16, 0)] == [8, 4, 2, 1, 8]
    probe = (  # a fresh process: TensorFlow takes thread limits only before its runtime starts
        "import tensorflow as tf; from genreflow.infra.devices import limit_cpu_threads; limit_cpu_threads(1); "
        "print(tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
