"""Settings of ``cmdb-worker run``: names, defaults, refusals that name the variable."""

import os

import pytest

from cmdb_worker.worker.cli import main
from cmdb_worker.worker.kafka_clients import security_config
from cmdb_worker.worker.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Each test starts with no CMDB_WORKER_* variables set."""
    for name in [name for name in os.environ if name.startswith("CMDB_WORKER_")]:
        monkeypatch.delenv(name)


def test_defaults_are_the_contracts():
    """Unset, the settings are the contract's defaults."""
    settings = load_settings()
    assert settings.bootstrap_servers == "localhost:9092"
    assert settings.group_id == "cmdb-worker"
    assert settings.http_port == 9108
    assert settings.input_topics == [
        "cmdb.discovery",
        "cicd.events",
        "itsm.changes",
        "cmdb.lesson-updates",
    ]


def test_environment_variables_set_each_field(monkeypatch):
    """CMDB_WORKER_* variables set the fields they name."""
    monkeypatch.setenv("CMDB_WORKER_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("CMDB_WORKER_TOPIC_FINDINGS", "team.findings")
    monkeypatch.setenv("CMDB_WORKER_CLOCK", "event")
    settings = load_settings()
    assert security_config(settings)["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert (settings.topic_findings, settings.clock) == ("team.findings", "event")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CMDB_WORKER_HTTP_PORT", "ninety"),
        ("CMDB_WORKER_HTTP_PORT", "70000"),
        ("CMDB_WORKER_SECURITY_PROTOCOL", "TLS"),
        ("CMDB_WORKER_SASL_MECHANISM", "GSSAPI"),
        ("CMDB_WORKER_SHUTDOWN_GRACE_SECONDS", "-1"),
        ("CMDB_WORKER_CLOCK", "sundial"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, variable, value):
    """Each bad value is refused with the variable's name in the message."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_an_unknown_variable_is_refused(monkeypatch):
    """A misspelt CMDB_WORKER_ variable is refused rather than silently ignored."""
    monkeypatch.setenv("CMDB_WORKER_BOOTSTRAP_SERVER", "k1:9092")
    with pytest.raises(SettingsError, match="CMDB_WORKER_BOOTSTRAP_SERVER"):
        load_settings()


def test_sasl_needs_mechanism_and_credentials(monkeypatch):
    """SASL without a mechanism, user and password is refused, naming what is missing."""
    monkeypatch.setenv("CMDB_WORKER_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="CMDB_WORKER_SASL_PASSWORD"):
        load_settings()


def test_scram_settings_reach_the_client_and_the_password_stays_hidden(monkeypatch):
    """SCRAM settings become kafka-python options; the password is not in the settings' repr."""
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": "cmdb",
        "SASL_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(f"CMDB_WORKER_{name}", value)
    settings = load_settings()
    config = security_config(settings)
    assert (config["sasl_mechanism"], config["sasl_plain_username"]) == ("SCRAM-SHA-512", "cmdb")
    assert config["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_a_yaml_config_file_is_read(monkeypatch, tmp_path):
    """CMDB_WORKER_CONFIG names a YAML file of settings; variables win over it."""
    config = tmp_path / "worker.yaml"
    config.write_text("group_id: from-file\nhttp_port: 9200\n")
    monkeypatch.setenv("CMDB_WORKER_CONFIG", str(config))
    monkeypatch.setenv("CMDB_WORKER_HTTP_PORT", "9300")
    settings = load_settings()
    assert (settings.group_id, settings.http_port) == ("from-file", 9300)


def test_run_refuses_a_bad_setting_before_touching_kafka(monkeypatch, capsys):
    """`cmdb-worker run` with a bad setting exits 2 at once, naming the variable."""
    monkeypatch.setenv("CMDB_WORKER_HTTP_PORT", "ninety")
    assert main(["run"]) == 2
    assert "CMDB_WORKER_HTTP_PORT" in capsys.readouterr().err


def test_run_refuses_a_bad_policy_file(monkeypatch, tmp_path, capsys):
    """`cmdb-worker run` with a bad policy exits 2, naming the policy key."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("governance:\n  governed_environments: prod\n")
    monkeypatch.setenv("CMDB_WORKER_POLICY", str(policy))
    assert main(["run"]) == 2
    assert "governance.governed_environments" in capsys.readouterr().err


def test_run_refuses_a_named_but_missing_settings_file(monkeypatch, tmp_path, capsys):
    """`cmdb-worker run` with CMDB_WORKER_CONFIG naming no file exits 2, naming the variable."""
    monkeypatch.setenv("CMDB_WORKER_CONFIG", str(tmp_path / "nowhere.yaml"))
    assert main(["run"]) == 2
    error = capsys.readouterr().err
    assert "CMDB_WORKER_CONFIG" in error and "nowhere.yaml" in error


def test_run_refuses_a_named_but_missing_policy_file(monkeypatch, tmp_path, capsys):
    """`cmdb-worker run` with CMDB_WORKER_POLICY naming no file exits 2, naming the file."""
    monkeypatch.setenv("CMDB_WORKER_POLICY", str(tmp_path / "gone.yaml"))
    assert main(["run"]) == 2
    assert "gone.yaml" in capsys.readouterr().err
