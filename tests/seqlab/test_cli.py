import subprocess
import sys

from seqlab import cli


def test_ui_serves_the_default_store_on_localhost(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    assert cli.main(["ui", "--port", "5123"]) == 0
    (command, env), = calls
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[-1] == "5123"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_fields_register_their_commands():
    help_text = cli.build_parser().format_help()
    assert "forecast" in help_text and "bench" in help_text and "ui" in help_text


def test_seqlab_command_starts_and_fails_cleanly_on_an_unknown_command():
    out = subprocess.run([sys.executable, "-m", "seqlab.cli", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice: 'nonsense'" in out.stderr
