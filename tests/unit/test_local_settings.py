import json

import pytest

from tools.local_settings import merged, read_settings, settings_path


def test_local_settings_preferred_over_sample(tmp_path):
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": {"A": "sample"}}))
    assert settings_path(tmp_path).name == "local.settings.sample.json"
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"A": "local", "N": 3}, "Host": {"LocalHttpPort": 7072}})
    )
    path = settings_path(tmp_path)
    assert path.name == "local.settings.json"
    values, host = read_settings(path)
    assert values == {"A": "local", "N": "3"} and host == {"LocalHttpPort": 7072}


def test_real_environment_wins():
    assert merged({"A": "file", "B": "file"}, {"A": "env"}) == {"A": "env", "B": "file"}


def test_no_settings_file(tmp_path):
    assert settings_path(tmp_path) is None


def test_encrypted_settings_refused(tmp_path):
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(ValueError, match="encrypted"):
        read_settings(tmp_path / "local.settings.json")
