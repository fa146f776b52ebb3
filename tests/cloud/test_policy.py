"""Config loading, credential rules and redaction."""

import pytest

from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import Policy, credential, load_config, parse_config
from hepstream.errors import ConfigError

CONFIG = """
[shim]
id = "test-shim"
state = "state.sqlite"

[policy]
max_starting = 7
idle_keepalive_s = 60

[[cloud]]
name = "nrc"
quota = 30
priority = 2
driver = "ec2"
[cloud.options]
endpoint = "http://127.0.0.1:1"
access_key_env = "TEST_HS_KEY"
secret_key_file = "secret.txt"

[[cloud]]
name = "uvic"
quota = 40
max_starting = 2
"""


def test_loads_policy_clouds_and_paths(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    assert cfg.policy == Policy(max_starting=7, idle_keepalive_s=60.0)
    assert [(c.name, c.quota, c.priority, c.driver) for c in cfg.clouds] == [
        ("nrc", 30, 2, "ec2"),
        ("uvic", 40, 0, "fake"),
    ]
    assert cfg.clouds[1].max_starting == 2
    assert cfg.state_path == tmp_path / "state.sqlite"
    assert cfg.shim_id == "test-shim"


def test_credentials_come_from_env_or_file_and_never_show(tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("s3cr3t-value\n")
    monkeypatch.setenv("TEST_HS_KEY", "AKID-value")
    cloud = Cloud(
        "c",
        1,
        options={"access_key_env": "TEST_HS_KEY", "secret_key_file": str(tmp_path / "secret.txt")},
    )
    assert credential(cloud, "access_key") == "AKID-value"
    assert credential(cloud, "secret_key") == "s3cr3t-value"
    cfg = parse_config(CONFIG, base=tmp_path)
    assert "AKID" not in repr(cfg)
    assert "secret.txt" not in repr(cfg)
    assert "redacted" in repr(cfg.clouds[0])


def test_literal_credentials_are_refused():
    text = '[[cloud]]\nname = "x"\nquota = 1\n[cloud.options]\nsecret_key = "abc"\n'
    with pytest.raises(ConfigError, match="secret_key_env"):
        parse_config(text)


def test_missing_env_credential_names_the_variable(monkeypatch):
    monkeypatch.delenv("HS_NOPE", raising=False)
    cloud = Cloud("c", 1, options={"access_key_env": "HS_NOPE"})
    with pytest.raises(ConfigError, match="HS_NOPE"):
        credential(cloud, "access_key")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[policy]\nnope = 1\n", "unknown key 'nope'"),
        ("[policy]\nmax_starting = 'x'\n", "not a number"),
        ("[[cloud]]\nquota = 1\n", "no name"),
        ('[[cloud]]\nname = "a"\n', "no quota"),
        ('[[cloud]]\nname = "a"\nquota = 1\nregion = "x"\n', "unknown keys"),
        ('[[cloud]]\nname = "a"\nquota = 1\n[[cloud]]\nname = "a"\nquota = 2\n', "unique"),
        ("[policy\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_error(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(text)
