import pytest


@pytest.fixture(scope="session")
def simvae_run(tmp_path_factory):
    """A SimVAE run on digits (2 epochs, a few seconds)."""
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    out = tmp_path_factory.mktemp("simvae") / "run"
    return train_run(data_config("digits"), TrainConfig(objective="simvae", epochs=2, batch_size=128), out)


@pytest.fixture(scope="session")
def simclr_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    out = tmp_path_factory.mktemp("simclr") / "run"
    return train_run(data_config("digits"), TrainConfig(objective="simclr", epochs=1, batch_size=128), out)
