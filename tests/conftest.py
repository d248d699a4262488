"""Shared fixtures: a tiny random Stable Diffusion model saved in the standard folder layout
(:func:`brainldm.diffusion.save_random_model`), toy worlds, and a dask cluster."""

from pathlib import Path

import pytest

from brainldm.diffusion import save_random_model


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """The tiny SD folder, built once per test session (16 px images, 32 px generation)."""
    folder = tmp_path_factory.mktemp("sd") / "tiny"
    return save_random_model(folder, image_size=16, generation_size=32)


@pytest.fixture
def retrain_in_place():
    """``retrain(folder, component)``: scale one component's weights in an SD folder by 1.1.

    The folder keeps its path and its configs, as after retraining a model in place; the
    model cache is emptied, as in a new session.
    """
    from safetensors.torch import load_file, save_file

    from brainldm.features import clear_model_cache

    def retrain(folder, component):
        (weights,) = Path(folder, component).glob("*.safetensors")
        save_file({k: v * 1.1 for k, v in load_file(weights).items()}, weights)
        clear_model_cache()

    return retrain


@pytest.fixture
def unreachable_hub(monkeypatch):
    """Point the Hugging Face hub at a local port that refuses connections; return its URL.

    It stands for the hub of an offline machine, without touching the real network.
    """
    import huggingface_hub

    nowhere = "http://127.0.0.1:9"
    template = huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", nowhere)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        nowhere + template[template.index("/{repo_id}") :],
    )
    return nowhere


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A toy NSD of one subject: 3 released sessions of 150 trials, 40 shared test images."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("world") / "nsd",
        n_sessions=4,
        n_released_sessions=3,
        trials_per_session=150,
        n_shared=40,
        subjects=("subj01",),
        progress=False,
    )


@pytest.fixture(scope="session")
def encode_world(tmp_path_factory):
    """Two subjects with 12 x 14 x 12 volumes (~530 voxels) and 100 training images each."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("encode-world") / "nsd",
        n_sessions=6,
        n_released_sessions=6,
        trials_per_session=60,
        n_shared=20,
        volume_shape=(12, 14, 12),
        subjects=("subj01", "subj02"),
        progress=False,
    )


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    """The default toy NSD (10 released sessions of 300 trials, 250 shared images), subj01 only."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("default-world") / "nsd", subjects=("subj01",), progress=False
    )


@pytest.fixture(scope="session")
def dask_client():
    """A local dask cluster of 2 worker processes with 1 thread each.

    Its client is current only where a test asks (``client.as_current()``),
    so that other tests see a process without a client.
    """
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _chunk_tasks_run(dask_worker):
    """Ridge chunk tasks a dask worker has started (passed to ``Client.run``)."""
    return sum(
        1
        for entry in dask_worker.state.log
        if "target_chunk" in str(entry[0]) and entry[1:3] == ("ready", "executing")
    )


@pytest.fixture
def dask_tasks(dask_client):
    """A function returning how many ridge chunk tasks the cluster's workers have run."""
    return lambda: sum(dask_client.run(_chunk_tasks_run).values())
