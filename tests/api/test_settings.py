"""Settings come from INFRA_API_* variables; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import SettingsError
from infra.settings import PROJECT_ROOT, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_environ({})
    assert (settings.host, settings.port, settings.engine) == ("127.0.0.1", 8000, "auto")
    assert settings.state_dir == PROJECT_ROOT / ".state"
    assert settings.venv_dir == PROJECT_ROOT / ".state" / "venvs"
    assert settings.request_timeout == 120.0
    assert settings.max_inflight == 8
    assert settings.token is None
    assert settings.passphrase is None


def test_values_are_parsed(tmp_path):
    settings = Settings.from_environ({
        "INFRA_API_HOST": "0.0.0.0",
        "INFRA_API_PORT": "9001",
        "INFRA_API_STATE_DIR": f"file://{tmp_path}",
        "INFRA_API_ENGINE": "offline",
        "INFRA_API_REQUEST_TIMEOUT": "30.5",
        "INFRA_API_MAX_INFLIGHT": "3",
        "INFRA_API_TOKEN": "s3cret",
        "INFRA_API_LOG_LEVEL": "debug",
        "PULUMI_CONFIG_PASSPHRASE": "pp",
    })
    assert (settings.host, settings.port, settings.engine) == ("0.0.0.0", 9001, "offline")
    assert settings.state_dir == tmp_path
    assert settings.backend_url == f"file://{tmp_path}/backend"
    assert settings.venv_dir == tmp_path / "venvs"
    assert (settings.request_timeout, settings.max_inflight) == (30.5, 3)
    assert (settings.token, settings.log_level, settings.passphrase) == ("s3cret", "DEBUG", "pp")
    assert "pp" not in repr(settings)


@pytest.mark.parametrize(("variable", "value"), [
    ("INFRA_API_PORT", "eighty"),
    ("INFRA_API_PORT", "0"),
    ("INFRA_API_PORT", "70000"),
    ("INFRA_API_ENGINE", "terraform"),
    ("INFRA_API_REQUEST_TIMEOUT", "-1"),
    ("INFRA_API_REQUEST_TIMEOUT", "nan"),
    ("INFRA_API_REQUEST_TIMEOUT", "soon"),
    ("INFRA_API_MAX_INFLIGHT", "0"),
    ("INFRA_API_MAX_INFLIGHT", "1.5"),
    ("INFRA_API_LOG_LEVEL", "LOUD"),
    ("INFRA_API_STATE_DIR", "file://"),
    ("INFRA_API_LOG_FORMAT", "xml"),
    ("INFRA_API_REAP_INTERVAL", "0"),
    ("INFRA_API_CANCEL_GRACE", "never"),
    ("INFRA_API_ORPHAN_AGE", "200"),
    ("INFRA_API_BACKEND_URL", "s3://bucket"),
    ("INFRA_API_BACKEND_URL", "postgres:///db"),
    ("INFRA_API_BACKEND_URL", "file://"),
    ("INFRA_API_BACKEND_URL", "postgres://u@127.0.0.1:99999/db"),  # port out of range
    ("INFRA_API_BACKEND_URL", "postgres://u@127.0.0.1:abc/db"),
])
def test_bad_value_names_the_variable(variable, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_environ({variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value) and repr(value) in str(info.value)


def test_backend_url_is_passed_on_and_shown_without_its_password(tmp_path):
    assert Settings.from_environ({}).backend_url == (PROJECT_ROOT / ".state" / "backend").as_uri()
    url = "postgres://burner:s3cret-pw@db.internal:5432/state?sslmode=require&table=t"
    settings = Settings.from_environ({"INFRA_API_BACKEND_URL": url})
    assert settings.backend_url == url
    assert settings.backend_display == (
        "postgres://burner:***@db.internal:5432/state?sslmode=require&table=t")
    assert "s3cret-pw" not in repr(settings)


def test_a_bad_backend_url_is_refused_without_echoing_its_password():
    with pytest.raises(SettingsError) as info:
        Settings.from_environ({"INFRA_API_BACKEND_URL": "mysql://u:hunter2@db/x"})
    assert "INFRA_API_BACKEND_URL" in str(info.value) and "hunter2" not in str(info.value)


def test_cli_engine_without_pulumi_on_path_is_a_startup_error(monkeypatch, tmp_path):
    from infra.engine import select_engine

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SettingsError, match="INFRA_API_ENGINE"):
        select_engine(Settings.from_environ({"INFRA_API_ENGINE": "cli"}))


def test_auto_engine_without_pulumi_on_path_is_offline(monkeypatch, tmp_path):
    from infra.engine import select_engine

    monkeypatch.setenv("PATH", str(tmp_path))
    assert select_engine(Settings.from_environ({})).name == "offline"


def test_generated_passphrase_is_private_and_stable(tmp_path):
    from infra.statedir import ensure_passphrase, ensure_state_dir

    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    ensure_state_dir(settings)
    first = ensure_passphrase(settings)
    assert len(first) >= 32
    assert (Path(tmp_path) / "passphrase").stat().st_mode & 0o777 == 0o600
    assert ensure_passphrase(settings) == first
    given = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "x"})
    assert ensure_passphrase(given) == "x"


def test_hardening_settings_are_parsed(tmp_path):
    settings = Settings.from_environ({
        "INFRA_API_LOG_FORMAT": "json",
        "INFRA_API_REAP_INTERVAL": "5",
        "INFRA_API_ORPHAN_AGE": "600",
        "INFRA_API_CANCEL_GRACE": "3",
        "INFRA_API_PROGRAM_DIR": str(tmp_path),
    })
    assert (settings.log_format, settings.reap_interval) == ("json", 5.0)
    assert (settings.orphan_age, settings.cancel_grace) == (600.0, 3.0)
    assert settings.program_dir == tmp_path


def test_orphan_age_defaults_to_well_above_a_long_request_timeout():
    assert Settings.from_environ({}).orphan_age == 900.0
    assert Settings.from_environ({"INFRA_API_REQUEST_TIMEOUT": "1000"}).orphan_age == 3000.0


def test_state_dir_is_created_private_and_marked(tmp_path):
    from infra.statedir import MARKER, ensure_state_dir

    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path / "state")})
    ensure_state_dir(settings)
    assert settings.state_dir.stat().st_mode & 0o777 == 0o700
    assert (settings.state_dir / MARKER).is_file()
    assert settings.backend_dir.is_dir() and settings.work_dir.is_dir()
    ensure_state_dir(settings)  # ours now: used again as it is


def test_a_non_empty_directory_it_did_not_create_is_refused_and_left_alone(tmp_path):
    from infra.errors import StateDirError
    from infra.statedir import ensure_state_dir

    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    (home / "tmp" / "notes.txt").write_text("mine")
    home.chmod(0o755)
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(home)})
    with pytest.raises(StateDirError, match="did not create"):
        ensure_state_dir(settings)
    assert (home / "tmp" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in home.iterdir()) == ["tmp"]
    assert home.stat().st_mode & 0o777 == 0o755


def test_an_empty_existing_directory_is_taken(tmp_path):
    from infra.statedir import MARKER, ensure_state_dir

    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    ensure_state_dir(settings)
    assert (tmp_path / MARKER).is_file()


def test_workflow_settings_are_parsed():
    settings = Settings.from_environ({
        "INFRA_API_TEMPORAL_ADDRESS": "temporal.internal:7233",
        "INFRA_API_TEMPORAL_NAMESPACE": "platform",
        "INFRA_API_TASK_QUEUE": "burner-eu",
        "INFRA_API_RUN_WORKER": "false",
        "INFRA_API_WORKER_CONCURRENCY": "3",
        "INFRA_API_WEBHOOK_CONCURRENCY": "20",
    })
    assert settings.temporal_address == "temporal.internal:7233"
    assert (settings.temporal_namespace, settings.task_queue) == ("platform", "burner-eu")
    assert (settings.run_worker, settings.worker_concurrency) == (False, 3)
    assert settings.webhook_concurrency == 20
    defaults = Settings.from_environ({})
    assert (defaults.worker_concurrency, defaults.webhook_concurrency) == (8, 8)
    assert defaults.temporal_address is None
    assert (defaults.temporal_namespace, defaults.task_queue, defaults.run_worker) == (
        "default", "burner", True)


@pytest.mark.parametrize(("name", "value"), [
    ("INFRA_API_TEMPORAL_ADDRESS", "localhost"),
    ("INFRA_API_TEMPORAL_ADDRESS", "http://x:7233"),
    ("INFRA_API_TEMPORAL_ADDRESS", "x:70000"),
    ("INFRA_API_TASK_QUEUE", "has space"),
    ("INFRA_API_TEMPORAL_NAMESPACE", "../x"),
    ("INFRA_API_RUN_WORKER", "maybe"),
    ("INFRA_API_WORKER_CONCURRENCY", "0"),
    ("INFRA_API_WEBHOOK_CONCURRENCY", "257"),
])
def test_bad_workflow_settings_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_environ({name: value})


@pytest.mark.parametrize(("text", "problem"), [
    (b"\xff\xfe subscribers\n", "a UTF-8 text file"),
    (b"subscribers:\n- {url: 'http://[::1/h', events: [stack.created], secret: s}\n",
     "an http(s) url"),
    (b"subscribers:\n- {url: 'http://h:99999/', events: [stack.created], secret: s}\n",
     "an http(s) url"),
])
def test_a_bad_webhooks_file_is_a_one_line_error_naming_the_problem(tmp_path, text, problem):
    from infra.webhooks import load_subscribers

    hooks = tmp_path / "webhooks.yaml"
    hooks.write_bytes(text)
    with pytest.raises(SettingsError, match="INFRA_API_WEBHOOKS_FILE") as info:
        load_subscribers(hooks)
    assert problem in str(info.value) and "\n" not in str(info.value)
