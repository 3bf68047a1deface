"""Golden test: the compiled clel step's gradients of L_EBM (eq. 12) and L_LE (eq. 13) equal a hand
transcription of Algorithm 1 of Lee et al. (2023) on tiny models, stop-gradients of lines 5-6
included. The draws (data, the augmented chain start, the augmented views) are taken from the step
(augmentations and banks are tested on their own); the SGLD noise is redrawn from the kernel's seed."""

import copy

import pytest
import torch
import torch.nn.functional as F

from captured_gradients import captured_gradients, recorded_outputs
from ebmgraph.engine.context import StepContext
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program

STEPS, STEP_SIZE, NOISE, BETA, ALPHA, TAU = 3, 400.0, 0.002, 0.5, 1.0, 0.2
# Spectral normalization is off: its power iteration advances on every forward pass, so the order of
# the passes, not the update rule, would decide the last digits.
TINY = ("data.batch_size=6", "models.energy.channels=4", "models.energy.spectral_norm=false", "models.energy.widths=[4,8]", "models.energy.latent_dim=8",
        "models.energy.head_hidden=8", "models.energy.projection_hidden=8", f"models.energy.beta={BETA}",
        "models.encoder.widths=[4,8]", "models.encoder.head_hidden=8", "models.encoder.latent_dim=8",
        f"nodes.negatives.steps={STEPS}", "train.progress=false")
# Algorithm 1 line 12 literally: one update of theta and phi on L_EBM + L_LE.
ONE_UPDATE = ("optimizers.encoder_optimizer=null", "optimizers.energy_optimizer.models=[energy,encoder]",
              "optimizers.energy_optimizer.losses=[cd,alignment,regularizer,contrastive]")
STEP = 1


def _unit(v):
    return v / v.norm(dim=1, keepdim=True)


def _features_and_mode(energy, x):
    """f(x) and g(f/‖f‖)/‖g(f/‖f‖)‖ (eq. 10), written out from the modules' layers."""
    f = energy.backbone(x)
    g = energy.projector(_unit(f))
    return f, _unit(g)


def _nt_xent(z1, z2, extra):
    """Eq. 13 term by term: for each view z_j(i), -log of exp(sim(z_j(i), z_3-j(i))/tau) over the sum
    of the same plus exp(sim/tau) of every other view and every extra negative (eq. 8)."""
    views = [z1, z2]
    total = 0.0
    n = len(z1)
    for i in range(n):
        for j in (0, 1):
            anchor = views[j][i]
            sim = lambda other: F.cosine_similarity(anchor, other, dim=0) / TAU  # noqa: E731
            positive = sim(views[1 - j][i])
            negatives = [sim(views[l][k]) for k in range(n) for l in (0, 1) if k != i]
            negatives += [sim(e) for e in extra]
            total = total - (positive - torch.logsumexp(torch.stack([positive, *negatives]), dim=0))
    return total / (2 * n)


def _algorithm_1(energy, encoder, x, x0, t_x, t_pair, noise, stop_line_5=True, stop_line_6=True):
    """Lines 4-12: SGLD from x0, z (line 5), z~ (line 6), L_EBM (line 8) and L_LE (lines 10-11);
    the gradients of L_EBM + L_LE with respect to theta = (f, g) and phi = h."""
    x_tilde = x0
    for _ in range(STEPS):                                   # x <- x - a grad E(x) + b xi, clamped to [-1, 1]
        x_in = x_tilde.detach().requires_grad_(True)
        f, _ = _features_and_mode(energy, x_in)
        (grad,) = torch.autograd.grad((0.5 * f.pow(2).sum(1)).sum(), x_in)
        x_tilde = (x_in - STEP_SIZE * grad + NOISE * torch.randn(x_in.shape, generator=noise)).clamp(-1, 1).detach()
    z = _unit(encoder(t_x))                                  # line 5
    z = z.detach() if stop_line_5 else z
    f_neg, mode_neg = _features_and_mode(energy, x_tilde)    # line 6
    z_tilde = mode_neg.detach() if stop_line_6 else mode_neg
    f_pos, mode_pos = _features_and_mode(energy, x)
    e_pos, e_neg = 0.5 * f_pos.pow(2).sum(1), 0.5 * f_neg.pow(2).sum(1)
    joint = e_pos - BETA * (mode_pos * z).sum(1)             # E(x, z), eq. 10
    l_ebm = joint.mean() - e_neg.mean() + ALPHA * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    n = len(x)
    h = encoder(t_pair)                                      # line 10: z_j = h(t_j(x))
    l_le = _nt_xent(h[:n], h[n:], z_tilde)
    total = l_ebm + l_le
    theta, phi = list(energy.parameters()), list(encoder.parameters())
    grads = torch.autograd.grad(total, theta + phi, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(theta + phi, grads)]
    return grads[:len(theta)], grads[len(theta):]


def _compiled_and_transcribed(overrides, **stops):
    spec = load_graph("graphs/clel.yaml", None, (*TINY, *overrides))
    program = Program(spec)
    for step in range(STEP):
        program.step(step)
    energy, encoder = copy.deepcopy(program.models["energy"]), copy.deepcopy(program.models["encoder"])
    outputs = recorded_outputs(program, ["data", "augmented", "data_view", "views"])
    gradients = captured_gradients(program)
    program.step(STEP)
    ctx = StepContext(spec.seed, STEP, torch.device("cpu"))
    expected = _algorithm_1(energy, encoder, outputs["data"]["x"], outputs["augmented"]["x"],
                            outputs["data_view"]["x"], outputs["views"]["x"], ctx.generator("negatives"), **stops)
    if "encoder_optimizer" in gradients:
        got = gradients["energy_optimizer"], gradients["encoder_optimizer"]
    else:
        got = gradients["energy_optimizer"][:len(expected[0])], gradients["energy_optimizer"][len(expected[0]):]
    return got, expected


def _assert_equal(got, expected):
    for part, name in enumerate(("theta", "phi")):
        assert len(got[part]) == len(expected[part])
        for index, (g, e) in enumerate(zip(got[part], expected[part])):
            torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6, msg=f"{name} parameter {index}")


def _relative_difference(got, expected, part):
    difference = sum((g - e).abs().sum() for g, e in zip(got[part], expected[part]))
    return difference / sum(e.abs().sum() for e in expected[part])


@pytest.mark.parametrize("overrides", [(), ONE_UPDATE], ids=["two-optimizers", "one-update"])
def test_gradients_match_algorithm_1(overrides):
    got, expected = _compiled_and_transcribed(overrides)
    _assert_equal(got, expected)


@pytest.mark.parametrize("line, part", [(5, 1), (6, 0)])
def test_a_missing_stop_gradient_changes_the_gradients(line, part):
    """Power check: Algorithm 1 without sg(·) on line 5 (L_EBM reaches phi) or line 6 (L_LE reaches
    theta) gives other gradients, so the test above would catch a missing stop-gradient port."""
    got, expected = _compiled_and_transcribed(ONE_UPDATE, **{f"stop_line_{line}": False})
    assert _relative_difference(got, expected, part) > 1e-3
