"""The CLI error guard: input and OS errors are one ``error:`` line with exit 1; any other exception
keeps its traceback; ``--debug`` (or ``$MEDMODAL_DEBUG``) shows the traceback of input errors too."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.cli.common import user_errors
from medmodal.errors import ConfigError, DataError

runner = CliRunner()


@pytest.fixture
def failing_command(monkeypatch):
    """Register ``medmodal fail <kind>`` on the real app for one test."""
    monkeypatch.delenv("MEDMODAL_DEBUG", raising=False)

    @user_errors
    def fail(kind: str):
        if kind == "input":
            raise DataError("cases.csv row 3: no label")
        if kind == "unknown":
            raise ConfigError("unknown model 'nope'")
        if kind == "missing":
            open("/nonexistent/medmodal/file.csv")
        if kind == "value":
            raise ValueError("a programming error")
        return 1 / 0

    app.command("fail")(fail)
    yield
    app.registered_commands.pop()


@pytest.mark.parametrize("kind, message", [("input", "cases.csv row 3: no label"),
                                           ("unknown", "unknown model 'nope'"),
                                           ("missing", "No such file or directory")])
def test_input_and_os_errors_are_one_line(failing_command, kind, message):
    result = runner.invoke(app, ["fail", kind])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind, error", [("zero", ZeroDivisionError), ("value", ValueError)])
def test_programming_errors_keep_their_traceback(failing_command, kind, error):
    result = runner.invoke(app, ["fail", kind])
    assert result.exit_code != 0
    assert isinstance(result.exception, error)
    assert "error:" not in result.output


def test_debug_reraises_input_errors(failing_command, monkeypatch):
    result = runner.invoke(app, ["--debug", "fail", "input"])
    assert isinstance(result.exception, DataError) and "error:" not in result.output
    result = runner.invoke(app, ["fail", "input"])  # the flag holds for one invocation only
    assert result.exit_code == 1 and result.output.startswith("error:")
    monkeypatch.setenv("MEDMODAL_DEBUG", "1")
    result = runner.invoke(app, ["fail", "input"])
    assert isinstance(result.exception, DataError)


def test_debug_prints_the_traceback(tmp_path):
    """End to end: ``medmodal --debug`` prints the Python traceback of an input error; without it one line."""
    cmd = [sys.executable, "-m", "medmodal.cli", "seg", "summary", str(tmp_path)]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 1 and plain.stderr.startswith("error:") and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "LayoutError" in debug.stderr


def test_a_bad_list_option_is_one_line(brats2020_root):
    result = runner.invoke(app, ["seg", "split", str(brats2020_root), "--fractions", "0.7,x,0.2"])
    assert result.exit_code == 1 and result.output.startswith("error:")
    assert "--fractions: 'x' is not a number" in result.output
