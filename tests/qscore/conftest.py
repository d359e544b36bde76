"""A tiny trained digits run shared by the Q-Score CLI tests (a few seconds)."""

import pytest


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.progress import set_enabled
    from sslaudit.run import data_config, train_run

    set_enabled(False)
    out = tmp_path_factory.mktemp("qscore") / "run"
    train_run(data_config("digits"), TrainConfig(objective="simclr", epochs=1, batch_size=128), out)
    return out
