from distributed import Client, LocalCluster

from genreflow.infra.devices import gpu_resources


def test_gpu_workers_are_recognised_by_their_dask_resource():
    for resources, expected in (({"GPU": 1}, True), (None, False)):
        with (
            LocalCluster(n_workers=1, processes=False, resources=resources, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            assert gpu_resources(client) is expected
