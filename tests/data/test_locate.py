import shutil

import pytest

from sslaudit.data import locate
from sslaudit.data.locate import candidate_dirs, find_data_file
from sslaudit.errors import UserError

from .conftest import FIXTURES

ADULT = ["adult.data", "adult.test"]


def _adult_copy(dst):
    dst.mkdir(parents=True, exist_ok=True)
    for f in ADULT:
        shutil.copy(FIXTURES / "adult" / f, dst / f)
    return dst


def test_finds_in_data_dir_and_its_subfolder(isolated, tmp_path):
    _adult_copy(tmp_path / "flat")
    got = find_data_file("adult", ADULT, tmp_path / "flat")
    assert got == {f: tmp_path / "flat" / f for f in ADULT}
    _adult_copy(tmp_path / "nested" / "adult")
    got = find_data_file("adult", ADULT, tmp_path / "nested")
    assert got["adult.test"] == tmp_path / "nested" / "adult" / "adult.test"


def test_env_var_and_order(isolated, tmp_path):
    env = _adult_copy(tmp_path / "env" / "adult").parent
    isolated.setenv("SSLAUDIT_DATA", str(env))
    assert find_data_file("adult", ADULT)["adult.data"] == env / "adult" / "adult.data"
    explicit = _adult_copy(tmp_path / "explicit")
    assert find_data_file("adult", ADULT, explicit)["adult.data"] == explicit / "adult.data"  # data_dir first
    dirs = candidate_dirs("fashion-mnist", explicit)
    assert dirs[:4] == [explicit, explicit / "fashion-mnist", env, env / "fashion-mnist"]


def test_system_dir_for_fashion_mnist():
    assert "/usr/share/datasets/fashion-mnist" in [str(d) for d in candidate_dirs("fashion-mnist")]


def test_alternative_names(isolated, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x")
    got = find_data_file("fashion-mnist", [("a.bin.gz", "a.bin")], tmp_path)
    assert got == {"a.bin.gz": tmp_path / "a.bin"}


def test_missing_lists_places_and_how_to_get(isolated, tmp_path):
    isolated.setenv("SSLAUDIT_DATA", str(tmp_path / "envdir"))
    isolated.setattr(locate, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "sys"),)})
    with pytest.raises(UserError) as e:
        find_data_file("fashion-mnist", ["train-images-idx3-ubyte.gz"], tmp_path)
    msg = str(e.value)
    for d in (tmp_path, tmp_path / "fashion-mnist", tmp_path / "envdir", tmp_path / "envdir" / "fashion-mnist", tmp_path / "sys"):
        assert str(d) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg
    with pytest.raises(UserError, match="UCI.*Census Income.*--data-dir"):
        find_data_file("adult", ADULT, tmp_path)


def test_partial_directory_is_named(isolated, tmp_path):
    (tmp_path / "adult.data").write_text("x")
    with pytest.raises(UserError, match="lacks adult.test"):
        find_data_file("adult", ADULT, tmp_path)


def test_nonexistent_data_dir(isolated, tmp_path):
    with pytest.raises(UserError, match="does not exist.*--data-dir"):
        find_data_file("adult", ADULT, tmp_path / "nope")
