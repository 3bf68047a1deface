"""Kernel health: mobility (distance moved over what the noise alone would move) is about 1 for
free diffusion and 0 for chains that stay put; a kernel whose acceptance or mobility falls below
its floor is warned about once, in the progress bar's health mark, on stderr and in metrics.jsonl."""

import json

import pytest
import torch

from ebmgraph.cli import main
from ebmgraph.engine.context import StepContext
from ebmgraph.nodes.kernels import Langevin, Mala
from ebmgraph.runs.health import KernelHealth
from tests.conftest import FAST


class Flat(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.weight * x.flatten(1).sum(1)


def _mobility(kernel_type, **config) -> float:
    kernel = kernel_type("chain", kernel_type.Config(**config), {"energy": Flat()}, torch.device("cpu"))
    ctx = StepContext(seed=0, step=0, device=torch.device("cpu"))
    kernel(ctx, torch.zeros(512, 64))
    return float(ctx.diagnostics["chain/mobility"])


def test_mobility_is_one_for_free_diffusion_and_zero_for_rejected_moves():
    # ||N(0, K b^2 I_64)|| / (b sqrt(64 K)) has mean 1 - 1/(4 * 64) + ... and sd 0.088 / sqrt(512) = 0.004
    assert _mobility(Langevin, steps=10, step_size=0.01, noise=0.1) == pytest.approx(1 - 1 / 256, abs=0.02)
    # every MALA proposal outside the clamp box is rejected: the chains never leave 0
    assert _mobility(Mala, steps=10, step_size=0.01, noise=1.0, clamp=[-1e-3, 1e-3]) == 0.0


def test_a_stuck_kernel_is_warned_about_once():
    health = KernelHealth()
    for value in (0.3, 0.2):
        health.observe({"chain/acceptance": torch.tensor(value), "other/grad_norm": torch.tensor(1.0),
                        "walker/mobility": torch.tensor(0.8)})
    assert health.close_window(10) == [] and health.marks == {"chain": "ok", "walker": "ok"}
    for value in (0.004, 0.012):  # mean 0.8 %
        health.observe({"chain/acceptance": torch.tensor(value), "walker/mobility": torch.tensor(value)})
    warnings = health.close_window(20)
    assert "kernel 'chain' accepted 0.80% of its MALA proposals over the last 2 steps" in warnings[0]
    assert "kernel 'walker' moved its chains 0.80% of the distance its noise alone would" in warnings[1]
    assert health.marks == {"chain": "stuck", "walker": "stuck"}
    health.observe({"chain/acceptance": torch.tensor(0.0)})
    assert health.close_window(30) == []  # warned once
    health.observe({"chain/acceptance": torch.tensor(0.5)})
    health.close_window(40)
    assert health.marks == {"chain": "ok"}


def test_a_collapsed_mala_run_warns_in_the_bar_and_the_log(tmp_path, capsys):
    out, graph = tmp_path / "run", tmp_path / "mala.yaml"
    graph.write_text(open("graphs/short_run.yaml").read().replace("type: langevin", "type: mala", 1))
    settings = [*FAST, "nodes.negatives.step_size=50.0", "nodes.negatives.noise=1.0",
                "nodes.negatives.clamp=[-1.0, 1.0]", "train.progress=true"]
    assert main(["run", str(graph), "--out", str(out), *[arg for s in settings for arg in ("--set", s)]]) == 0
    err = capsys.readouterr().err
    assert "warning: step 1: kernel 'negatives' accepted" in err
    assert "health=stuck" in err and "accept=" in err and "grad=" in err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "negatives" in records[0]["warnings"][0] and all("warnings" not in r for r in records[1:])
    assert all(r["negatives/mobility"] < 0.01 for r in records)


def test_a_healthy_run_is_marked_ok(tmp_path, capsys):
    settings = [*FAST, "train.progress=true"]
    assert main(["run", "graphs/short_run.yaml", "--out", str(tmp_path / "run"),
                 *[arg for s in settings for arg in ("--set", s)]]) == 0
    err = capsys.readouterr().err
    assert "health=ok" in err and "warning" not in err
