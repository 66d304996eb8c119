"""The command-line wrapper: bad input is one ``error:`` line and exit code 2, a stop on
request exit code 75, a bug keeps its traceback."""

import pytest

from fcn_jax import cli
from fcn_jax.checkpoint import CheckpointError
from fcn_jax.preemption import EXIT_PREEMPTED, Preempted


def raising(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error", [ValueError("config.x = 0: expected 1"),
                                   FileNotFoundError("no checkpoints in w"),
                                   CheckpointError("checkpoint 4 is unreadable"),
                                   FloatingPointError("loss is not finite")])
def test_a_user_error_is_one_line_and_exit_code_2(error, capsys, monkeypatch):
    monkeypatch.delenv("FCN_JAX_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as stop:
        cli.guarded(raising(error))(["prog"])
    assert stop.value.code == cli.EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_a_stop_on_request_exits_75_with_its_message(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.guarded(raising(Preempted("stopped by SIGTERM after step 3")))(["prog"])
    assert stop.value.code == EXIT_PREEMPTED == 75
    assert capsys.readouterr().err == "stopped by SIGTERM after step 3\n"


def test_a_bug_keeps_its_traceback_and_the_variable_shows_user_errors_too(monkeypatch):
    with pytest.raises(KeyError):
        cli.guarded(raising(KeyError("bug")))(["prog"])
    monkeypatch.setenv("FCN_JAX_TRACEBACK", "1")
    with pytest.raises(ValueError, match="shown"):
        cli.guarded(raising(ValueError("shown")))(["prog"])


def test_main_returns_through_the_wrapper():
    assert cli.guarded(lambda argv: len(argv))(["a", "b"]) == 2
