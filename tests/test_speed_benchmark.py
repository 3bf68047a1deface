"""benchmarks/speed.py compares like with like: its hand-written steps give the engine's losses
(through a bank's reservoir replacement and history set, and a generator's and an encoder's
chains), and the kernel, the eager limit and
the naive loop run the same chain exactly."""

import sys
from pathlib import Path

import attrs
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from speed_langevin import build_energy, chains  # noqa: E402
from speed_steps import GRAPHS, assert_equal_losses, engine_and_hand  # noqa: E402
from speed_timing import interleaved  # noqa: E402

SMALL = ("data.batch_size=8", "models.energy.channels=4")
TINY = (*SMALL, "nodes.negatives.steps=3")
BANKS = ("nodes.bank.capacity=20",)  # 48 samples offered to 20 slots: replacement and history
LATENT = (*SMALL, "models.generator.channels=4")
GRAPH_OVERRIDES = {"short_run": TINY, "igebm": TINY + BANKS, "improved_cd": (*TINY, *BANKS, "nodes.bank.history=10"),
                   "cooperative": (*LATENT, "nodes.revised.steps=3"),
                   "dual_mcmc": (*LATENT, "models.encoder.channels=4", "nodes.revised_x.steps=3",
                                 "nodes.revised_z.steps=3")}


@pytest.mark.parametrize("graph", GRAPHS)
def test_hand_written_steps_give_the_engine_losses(graph):
    program, hand = engine_and_hand(graph, GRAPH_OVERRIDES[graph])
    assert_equal_losses(program, hand, 6)


def test_a_hand_step_that_differs_is_caught():
    program, hand = engine_and_hand("short_run", TINY)
    hand.kernel = attrs.evolve(hand.kernel, step_size=hand.kernel.step_size * 1.5)
    with pytest.raises(AssertionError, match="cd"):
        assert_equal_losses(program, hand, 2)


def test_the_kernel_chain_is_the_eager_limit_chain():
    energy, shape = build_energy("digits conv", torch.device("cpu"))
    work = chains(energy, 4, shape, 3, torch.device("cpu"), compiled=False)
    limit = work["eager limit"]()
    torch.testing.assert_close(work["ebmgraph"](), limit, rtol=0, atol=0)
    torch.testing.assert_close(work["naive"](), limit, rtol=0, atol=0)  # the same chain, only slower


def test_interleaved_rounds_alternate_their_order():
    calls = []
    interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, torch.device("cpu"), warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b"]
