"""Training threads: ``train.threads`` (or half the cores) for the run, restored after it, and
a warning when they exceed the cores other work leaves free."""

import torch

from ebmgraph.cli import main
from ebmgraph.runs import runner as runner_module
from ebmgraph.runs import threads as threads_module
from ebmgraph.runs.threads import choose_threads, oversubscription_warning
from tests.conftest import FAST


def test_threads_default_to_half_the_cores_within_the_process_threads():
    assert choose_threads(None, current=8, cores=8) == 4 and choose_threads(None, current=2, cores=2) == 1
    assert choose_threads(None, current=1, cores=1) == 1  # never none
    assert choose_threads(None, current=2, cores=16) == 2  # not more than the caller allowed
    assert choose_threads(3, current=1, cores=2) == 3  # asked for: as asked


def test_oversubscription_is_warned_about():
    assert oversubscription_warning(2, cores=2, busy=0) is None
    assert oversubscription_warning(1, cores=2, busy=2) is None  # one thread always fits
    warning = oversubscription_warning(2, cores=2, busy=1)
    assert warning.startswith("2 threads on 2 cores, about 1 of them busy") and "--threads 1" in warning


def test_a_run_uses_its_threads_and_restores_them(tmp_path, monkeypatch, capsys):
    seen, step = [], runner_module.Runner._step

    def recording(self, *args):
        seen.append(torch.get_num_threads())
        return step(self, *args)

    monkeypatch.setattr(runner_module.Runner, "_step", recording)
    monkeypatch.setattr(threads_module, "busy_cores", lambda: 0)
    monkeypatch.setattr(threads_module, "usable_cores", lambda: 1)
    before = torch.get_num_threads()
    command = ["run", "graphs/short_run.yaml", "--out", str(tmp_path / "run"), "--threads", "2"]
    assert main(command + [arg for setting in FAST for arg in ("--set", setting)]) == 0
    assert seen == [2] * 4 and torch.get_num_threads() == before
    assert "warning: 2 threads on 1 cores, about 0 of them busy" in capsys.readouterr().err
