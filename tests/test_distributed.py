"""Data-parallel training (torch.distributed, gloo, two CPU processes): the averaged gradient of
two ranks with half the batch each is the one-process gradient of the whole batch; a two-process
run writes both bank shards and resumes bit-identically; another world size is refused."""

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program
from ebmgraph.cli import main
from captured_gradients import captured_gradients
from tests.conftest import FAST

TINY = FAST + ("data.batch_size=8", "nodes.bank.capacity=12", "nodes.bank.reinit=0.2")
BATCH = 8


def _fixed_negatives() -> torch.Tensor:
    return torch.rand((BATCH, 1, 8, 8), generator=torch.Generator().manual_seed(7)) * 2 - 1


def _with_fixed_negatives(program: Program, negatives: torch.Tensor) -> dict:
    """The program's first-step gradients with the chain's output replaced by ``negatives``."""
    program._node_namespace.negatives = lambda ctx, init: {"x": negatives, "x_differentiable": negatives}
    captured = captured_gradients(program)
    program.step(0)
    return captured


def _rank(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        program = Program(load_graph("graphs/igebm.yaml", None, TINY), "cpu", rank, 2)
        share = _fixed_negatives()[rank * BATCH // 2:(rank + 1) * BATCH // 2]
        torch.save(_with_fixed_negatives(program, share), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_with_half_batches_give_the_whole_batch_gradient(tmp_path):
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    single = _with_fixed_negatives(Program(load_graph("graphs/igebm.yaml", None, TINY)), _fixed_negatives())
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank in ranks:
        for got, expected in zip(rank["energy_optimizer"], single["energy_optimizer"]):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)  # float32 sums in another order
    # power check: one rank's own half-batch gradient is not the whole batch's
    alone = _with_fixed_negatives(Program(load_graph("graphs/igebm.yaml", None, TINY[:-3] + (
        "data.batch_size=4", "nodes.bank.capacity=12", "nodes.bank.reinit=0.2"))), _fixed_negatives()[:4])
    assert any(not torch.allclose(a, e, atol=1e-6)
               for a, e in zip(alone["energy_optimizer"], single["energy_optimizer"]))


def _ebmgraph(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ebmgraph", *args], capture_output=True, text=True, timeout=300)


def _checkpoint(run, step: int):
    return run / "checkpoints" / f"step_{step:08d}"


def _sets(*settings: str) -> list[str]:
    return [arg for setting in settings for arg in ("--set", setting)]


def test_a_two_process_run_writes_both_bank_shards_and_resumes_exactly(tmp_path, capsys):
    whole = tmp_path / "whole"
    done = _ebmgraph("run", "graphs/igebm.yaml", "--nproc", "2", "--out", str(whole),
                     *_sets(*TINY, "train.steps=4", "train.checkpoint_every=2", "eval.metrics=[ood]"))
    assert done.returncode == 0, done.stderr
    assert "(2 processes)" in done.stderr
    last = _checkpoint(whole, 4)
    assert {"banks.h5", "banks_rank1.h5", "state.pt"} <= {p.name for p in last.iterdir()}
    with h5py.File(last / "banks.h5") as zero, h5py.File(last / "banks_rank1.h5") as one:
        assert zero["bank"]["storage"].shape == one["bank"]["storage"].shape == (12, 1, 8, 8)
        assert not np.array_equal(zero["bank"]["storage"][:], one["bank"]["storage"][:])  # own chains per rank

    split = tmp_path / "split"
    shutil.copytree(whole, split)
    resumed = _ebmgraph("run", "--resume", f"{split}@2", "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(_checkpoint(run, 4) / "state.pt", weights_only=True) for run in (whole, split))
    for key, value in a["models"]["energy"].items():
        assert torch.equal(value, b["models"]["energy"][key]), key
    for name in ("banks.h5", "banks_rank1.h5"):
        with h5py.File(_checkpoint(whole, 4) / name) as x, h5py.File(_checkpoint(split, 4) / name) as y:
            assert np.array_equal(x["bank"]["storage"][:], y["bank"]["storage"][:]), name

    assert main(["run", "--resume", str(whole), "--steps", "6"]) == 2  # one process: refused, nothing lost
    assert "was written by 2 process(es) and this run has 1" in capsys.readouterr().err
    assert (_checkpoint(whole, 4) / "banks_rank1.h5").exists()


FAILING_LOSS = '''
import attrs
from ebmgraph import nodes


@attrs.define
class Config:
    pass


@nodes.register
class FailsOnRankOne(nodes.LossNode):
    """Contrastive divergence that fails on rank 1 at the second step."""

    type_name = "fails_on_rank_one"
    Config = Config
    inputs = (nodes.Port("positive", nodes.ENERGY), nodes.Port("negative", nodes.ENERGY))
    outputs = (nodes.Port("loss", nodes.LOSS),)

    def infer(self, inputs):
        return {"loss": nodes.Value(nodes.LOSS, ())}

    def __call__(self, ctx, positive, negative):
        if ctx.rank == 1 and ctx.step == 1:
            raise RuntimeError("rank one gives up")
        return {"loss": positive.mean() - negative.mean()}
'''


def test_a_failing_rank_stops_the_run_with_its_message(tmp_path):
    plugin = tmp_path / "failing.py"
    plugin.write_text(FAILING_LOSS)
    loss = "losses.cd={type: fails_on_rank_one, positive: positive_energy, negative: negative_energy}"
    failed = _ebmgraph("--plugin", str(plugin), "run", "graphs/short_run.yaml", "--nproc", "2", "--out",
                       str(tmp_path / "run"), *_sets(*FAST, "data.batch_size=8", loss, "train.steps=3",
                                                     "train.checkpoint_every=1"))
    assert failed.returncode != 0
    assert "node 'cd' (fails_on_rank_one) failed at step 2: RuntimeError: rank one gives up" in failed.stderr
    assert (_checkpoint(tmp_path / "run", 1) / "state.pt").exists()  # the last good checkpoint is kept
