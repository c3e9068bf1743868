"""Where dataset files are looked for: explicit dir, $SEQLAB_DATA_DIR, ../shared/data/<field>."""

from seqlab import datadirs
from seqlab.datadirs import field_data_dirs


def test_an_explicit_dir_is_the_only_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "env"))
    assert field_data_dirs("pde", tmp_path / "mine") == [tmp_path / "mine"]


def test_env_dir_then_shared_dir_beside_the_repo(tmp_path, monkeypatch):
    monkeypatch.setattr(datadirs, "REPO_PARENT", tmp_path / "repo_parent")
    shared = tmp_path / "repo_parent" / "shared" / "data" / "pde"
    shared.mkdir(parents=True)
    env = tmp_path / "env"
    (env / "pde").mkdir(parents=True)
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(env))
    assert field_data_dirs("pde") == [env / "pde", shared]  # the field's subfolder when it has one
    assert field_data_dirs("rl") == [env]  # else the folder itself
    monkeypatch.delenv("SEQLAB_DATA_DIR")
    assert field_data_dirs("pde") == [shared]
    assert field_data_dirs("rl") == []  # absent folders are left out


def test_shared_dir_beside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(datadirs, "REPO_PARENT", tmp_path / "elsewhere")
    monkeypatch.delenv("SEQLAB_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data" / "forecasting").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert field_data_dirs("forecasting") == [tmp_path / "shared" / "data" / "forecasting"]
