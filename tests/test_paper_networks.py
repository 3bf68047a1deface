"""The ``paper`` profiles build the papers' networks: each network's parameter count is within 15 %
of the paper's number (or, where a paper gives none, of the count its architecture tables give),
and its feature maps have the shapes the tables list. Models are built on the meta device as
``ebmgraph check`` does (no weights allocated); a few tiny CPU checks cover the new options."""

import functools

import pytest
import torch
from torch import nn

from ebmgraph.engine.build import build_models
from ebmgraph.engine.load import load_graph
from ebmgraph.nodes.amortizers import ConditionedBlock, DiffusionAmortizerConfig
from ebmgraph.nodes.energies import (
    ConvEnergy,
    ConvEnergyConfig,
    ResidualBlock,
    SelfAttention,
    SpatialPool,
)
from ebmgraph.nodes.generators import DeconvGenerator, DeconvGeneratorConfig, UpBlock
from ebmgraph.nodes.multiscale import MultiscaleEnergy, MultiscaleEnergyConfig

CIFAR = (3, 32, 32)
TOLERANCE = 0.15


def conv(width_in: int, width_out: int, kernel: int) -> int:
    """Parameters of a (transposed) convolution with bias."""
    return width_in * width_out * kernel * kernel + width_out


def linear(width_in: int, width_out: int) -> int:
    return width_in * width_out + width_out


# Dual-MCMC (Cui & Han 2023), Table 9, "Ours 2" (the residual networks of the main results, nef = 512
# as in Table 7): # EBM 16M, # Generator 16M, # Inference 15M.
DUAL_MCMC = {"energy": 16e6, "generator": 16e6, "encoder": 15e6}

# DAMC (Yu et al. 2023) gives no parameter counts; these are computed from its CIFAR-10 tables.
DAMC_ENERGY = linear(128, 200) + linear(200, 200) + linear(200, 1)  # Table 1: nz 128, ndf 200
# Table 2 (CIFAR-10, ngf = 128): 8x8 ConvT(ngf x 8) of the 1x1 z, 4x4 ConvT(ngf x 4), 4x4 ConvT(ngf x 2), 3x3 ConvT(3)
DAMC_GENERATOR = conv(128, 1024, 8) + conv(1024, 512, 4) + conv(512, 256, 4) + conv(256, 3, 3)
# Table 4 (CIFAR-10, nif = 64, nemb = 1024): Conv + instance norm (2 parameters a channel) per row
DAMC_ENCODER = sum(conv(a, b, k) + 2 * b for a, b, k in
                   [(3, 64, 3), (64, 128, 4), (128, 256, 4), (256, 512, 4), (512, 1024, 4)])
# Table 3: time MLP (two 128 x 128 linears), learned Fourier B (nz x nz/2), and basic blocks: the input's
# linear, the merged (nemb + 128) embedding's Linear-SiLU to nout, scale and shift (nout -> nout each), skip
DAMC_CONDITION = 1024 + 128
DAMC_BLOCKS = [(256, 128), (128, 256), (256, 256), (256, 256), (512, 256), (512, 128), (256, 128)]
DAMC_DIFFUSION = 2 * linear(128, 128) + 128 * 64 + sum(
    2 * linear(a, b) + linear(DAMC_CONDITION, b) + 2 * linear(b, b) for a, b in DAMC_BLOCKS)


def _resblock(width_in: int, width_out: int) -> int:
    """Improved CD's residual block (appendix B.1: group norm inside each block): norm, 3x3 conv,
    norm, 3x3 conv, a 1x1 shortcut when widths differ."""
    return (2 * width_in + conv(width_in, width_out, 3) + 2 * width_out + conv(width_out, width_out, 3)
            + (conv(width_in, width_out, 1) if width_in != width_out else 0))


# Improved CD (Du et al. 2021) gives no parameter count; Table 5 (CIFAR-10): 3x3 conv 64, ResBlock 64,
# ResBlock Down 64, ResBlock 64, ResBlock Down 64, Self Attention 64, ResBlock 128, ResBlock Down 128,
# ResBlock 256, ResBlock Down 256, global mean pooling, dense -> 1. Appendix B.1: the half and quarter
# resolution networks remove the first one and two down-sampled residual blocks (ResBlock Down 64).
IMPROVED_CD_FULL = (conv(3, 64, 3) + 4 * _resblock(64, 64) + _resblock(64, 128) + _resblock(128, 128)
                    + _resblock(128, 256) + _resblock(256, 256) + (2 * conv(64, 8, 1) + conv(64, 64, 1) + 1)
                    + linear(256, 1))
IMPROVED_CD = 3 * IMPROVED_CD_FULL - 3 * _resblock(64, 64)

# JEM (Grathwohl et al. 2020) uses a WRN-28-10: 36.5M parameters (Zagoruyko & Komodakis 2016, CIFAR results table).
JEM = 36.5e6

# CLEL (Lee et al. 2023), Table 3: the Base EBM f_theta (with g) has 6.96M parameters. Its encoder h
# (appendix B): the CIFAR ResNet-18 without its classifier, 11,168,832 parameters (11,173,962 with
# its 10-class layer), then a 2-layer MLP head 512 -> 512 -> 128.
CLEL_BASE = 6.96e6
CLEL_ENCODER = 11_168_832 + linear(512, 512) + linear(512, 128)

PAPER = [
    ("clel", "energy", CLEL_BASE),
    ("clel", "encoder", CLEL_ENCODER),
    ("dual_mcmc", "energy", DUAL_MCMC["energy"]),
    ("dual_mcmc", "generator", DUAL_MCMC["generator"]),
    ("dual_mcmc", "encoder", DUAL_MCMC["encoder"]),
    ("damc_lebm", "generator", DAMC_GENERATOR),
    ("damc_lebm", "energy", DAMC_ENERGY),
    ("damc_lebm", "amortizer", DAMC_ENCODER + DAMC_DIFFUSION),
    ("improved_cd", "energy", IMPROVED_CD),
    ("jem", "energy", JEM),
]


@functools.cache
def paper_models(graph: str) -> dict[str, nn.Module]:
    """The paper profile's models for CIFAR-10 images, built on the meta device as ``ebmgraph check``
    does (once per graph: the tests only read them)."""
    return build_models(load_graph(f"graphs/{graph}.yaml", "paper", ()), torch.device("meta"), CIFAR)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def feature_shapes(model: nn.Module, kinds: tuple[type, ...], run) -> list[tuple[int, ...]]:
    """Output shapes of the modules of ``kinds`` inside ``model`` while ``run()`` runs (meta tensors)."""
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for m in model.modules() if isinstance(m, kinds)]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


@pytest.mark.parametrize("graph, model, paper", PAPER, ids=[f"{g}-{m}" for g, m, _ in PAPER])
def test_parameter_count_is_within_15_percent_of_the_paper(graph, model, paper):
    got = count(paper_models(graph)[model])
    assert abs(got - paper) <= TOLERANCE * paper, f"{graph} {model}: {got:,} parameters, the paper {paper:,.0f}"


@pytest.mark.parametrize("graph, counts", [
    ("dual_mcmc", {"energy": 19265, "generator": 37665, "encoder": 12624}),
    ("damc_lebm", {"generator": 37665, "energy": 43801, "amortizer": 425312, "target": 425312}),
    ("improved_cd", {"energy": 34067, "energy_ema": 34067}),
    ("clel", {"energy": 35776, "energy_ema": 35776, "encoder": 23568, "encoder_ema": 23568}),
])
def test_the_digits_default_networks_are_unchanged(graph, counts):
    spec = load_graph(f"graphs/{graph}.yaml", None, ())
    models = build_models(spec, torch.device("meta"), (1, 8, 8))
    assert {name: count(m) for name, m in models.items()} == counts


# --- Dual-MCMC ------------------------------------------------------------------------------------

def test_dual_mcmc_energy_is_four_residual_blocks_at_nef_512_down_to_8x8():
    energy = paper_models("dual_mcmc")["energy"]
    blocks = [m for m in energy.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 4
    first = blocks[0].residual[0]  # no stem, and no activation before the first conv (SNGAN's first block)
    assert isinstance(first, nn.Conv2d) and (first.in_channels, first.out_channels) == (3, 512)
    x = torch.empty(2, *CIFAR, device="meta")
    shapes = feature_shapes(energy, (ResidualBlock, nn.AvgPool2d), lambda: energy(x))
    assert shapes == [(2, 512, 32, 32), (2, 512, 16, 16), (2, 512, 16, 16), (2, 512, 8, 8), (2, 512, 8, 8),
                      (2, 512, 8, 8)]


def test_dual_mcmc_generator_is_residual_upsampling_from_4x4():
    generator = paper_models("dual_mcmc")["generator"]
    z = torch.empty(2, 128, device="meta")
    shapes = feature_shapes(generator, (nn.Unflatten, UpBlock), lambda: generator(z))
    assert shapes == [(2, 512, 4, 4), (2, 512, 8, 8), (2, 512, 16, 16), (2, 512, 32, 32)]
    assert generator(z).shape == (2, *CIFAR)


def test_dual_mcmc_encoder_has_a_stem_then_three_stride_2_convolutions():
    encoder = paper_models("dual_mcmc")["encoder"]
    x = torch.empty(2, *CIFAR, device="meta")
    shapes = feature_shapes(encoder, (nn.Conv2d,), lambda: encoder(x))
    assert shapes == [(2, 128, 32, 32), (2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4)]
    mean, log_variance = encoder(x)
    assert mean.shape == log_variance.shape == (2, 128)


# --- DAMC -----------------------------------------------------------------------------------------

def test_damc_generator_starts_at_8x8_with_ngf_x_8_channels():
    """Table 2 (CIFAR-10): 8x8x(ngf x 8), 16x16x(ngf x 4), 32x32x(ngf x 2), then a 3x3 ConvT to the image."""
    generator = paper_models("damc_lebm")["generator"]
    z = torch.empty(2, 128, device="meta")
    shapes = feature_shapes(generator, (nn.Unflatten, nn.ConvTranspose2d), lambda: generator(z))
    assert shapes == [(2, 1024, 8, 8), (2, 512, 16, 16), (2, 256, 32, 32), (2, 3, 32, 32)]
    last = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    assert last.kernel_size == (3, 3) and last.stride == (1, 1)


def test_damc_context_encoder_is_table_4_ending_in_conv_norm_lrelu():
    amortizer = paper_models("damc_lebm")["amortizer"]
    layers = list(amortizer.encoder)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 64, 3, 1), (64, 128, 4, 2), (128, 256, 4, 2), (256, 512, 4, 2), (512, 1024, 4, 1)]
    assert layers[-4] is convs[-1] and isinstance(layers[-3], nn.GroupNorm) and isinstance(layers[-2], nn.LeakyReLU)
    assert not any(isinstance(m, nn.Linear) for m in layers)
    x = torch.empty(2, *CIFAR, device="meta")
    assert amortizer.context(x).shape == (2, 1024) and amortizer.context_dim == 1024


def test_damc_noise_predictor_blocks_project_the_merged_embedding():
    """Table 3's basic block: the merged (nemb + 128) embedding goes through Linear, SiLU to nout."""
    predictor = paper_models("damc_lebm")["amortizer"].predictor
    blocks = [m for m in predictor.modules() if isinstance(m, ConditionedBlock)]
    assert [(b.linear.in_features, b.linear.out_features) for b in blocks] == DAMC_BLOCKS
    for block in blocks:
        projection = block.scale_shift[1]
        assert (projection.in_features, projection.out_features) == (DAMC_CONDITION, block.linear.out_features)


def test_a_zero_initialized_projected_block_outputs_zero_and_still_learns_its_projection():
    torch.manual_seed(0)
    block = ConditionedBlock(6, 4, 5, project=True)
    block.zero_output()
    h, condition = torch.randn(3, 6), torch.randn(3, 5)
    assert torch.equal(block(h, condition), torch.zeros(3, 4))
    loss = (block(h, condition) - 1).pow(2).sum()
    loss.backward()
    assert block.scale_shift[-1].weight.grad.abs().sum() > 0  # the projection's output reaches the scale/shift


# --- Improved CD ----------------------------------------------------------------------------------

def _layout(net: nn.Sequential) -> list[str]:
    names = {ResidualBlock: "res", nn.AvgPool2d: "down", SelfAttention: "attn"}
    out = []
    for module in net:
        name = names.get(type(module))
        if name == "res":
            name = f"res{module.residual[-1].out_channels}"
        if name:
            out.append(name)
    return out


def test_multiscale_networks_drop_the_first_down_sampled_residual_blocks():
    """Appendix B.1: the half resolution network is Table 5 without its first "ResBlock Down", the
    quarter resolution one without the first two; the plain ResBlocks and the attention stay."""
    energy = paper_models("improved_cd")["energy"]
    full, half, quarter = energy.body.nets
    table_5 = ["res64", "res64", "down", "res64", "res64", "down", "attn", "res128", "res128", "down",
               "res256", "res256", "down"]
    assert _layout(full) == table_5
    assert _layout(half) == table_5[:1] + table_5[3:]
    assert _layout(quarter) == table_5[:1] + table_5[3:4] + table_5[6:]
    assert [count(n) for n in (full, half, quarter)] == [IMPROVED_CD_FULL - k * _resblock(64, 64) for k in range(3)]


def test_every_scale_ends_at_the_same_feature_resolution():
    energy = paper_models("improved_cd")["energy"]
    x = torch.empty(2, *CIFAR, device="meta")
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, inputs, _o: shapes.append(tuple(inputs[0].shape)))
             for m in energy.modules() if isinstance(m, SpatialPool)]
    energy(x)
    for hook in hooks:
        hook.remove()
    assert shapes == [(2, 256, 2, 2)] * 3


def test_with_one_block_a_stage_the_removed_block_is_the_whole_stage():
    """The digits default (one block a stage): removing a stage's down-sampled block removes the stage."""
    config = MultiscaleEnergyConfig(channels=4, stages=2, scales=3)
    nets = MultiscaleEnergy.build(config, (1, 8, 8)).body.nets
    assert [_layout(n) for n in nets] == [["res4", "down", "res8", "down"], ["res8", "down"], []]


def test_multiscale_scales_are_bounded_by_the_downsampling_stages():
    assert MultiscaleEnergyConfig(stages=3, downsample=[0, 2], scales=3).problems() == []
    problems = MultiscaleEnergyConfig(stages=3, downsample=[0, 2], scales=4).problems()
    assert [key for key, _ in problems] == ["scales"]


# --- the new options on CPU -----------------------------------------------------------------------

def test_a_stemless_energy_with_undownsampled_stages_differentiates_twice():
    torch.manual_seed(0)
    config = ConvEnergyConfig(channels=4, stages=3, widths=[4, 4, 4], downsample=[0], stem=False, norm="group",
                              pooling="mean", attention=[2])
    energy = ConvEnergy.build(config, (3, 8, 8))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(energy(x).sum(), x, create_graph=True)
    second = torch.autograd.grad(grad.pow(2).sum(), next(iter(energy.parameters())))[0]
    assert grad.shape == x.shape and torch.isfinite(second).all()


def test_a_residual_generator_maps_latents_to_images_with_gradients():
    torch.manual_seed(0)
    config = DeconvGeneratorConfig(latent_dim=3, stages=2, widths=[8, 4, 4], block="residual", output_kernel=3,
                                   norm="group")
    generator = DeconvGenerator.build(config, (1, 8, 8))
    z = torch.randn(2, 3, requires_grad=True)
    x = generator(z)
    (grad,) = torch.autograd.grad(x.sum(), z)
    assert x.shape == (2, 1, 8, 8) and x.abs().max() <= 1 and torch.isfinite(grad).all()


@pytest.mark.parametrize("config, key", [
    (DeconvGeneratorConfig(stages=2, widths=[8, 4, 4]), "widths"),
    (DeconvGeneratorConfig(stages=2, widths=[8, 4], output_kernel=3), "widths"),
    (DeconvGeneratorConfig(output_kernel=4), "output_kernel"),
    (DeconvGeneratorConfig(block="residual"), "output_kernel"),
    (DeconvGeneratorConfig(norm="group"), "norm"),
    (ConvEnergyConfig(stages=2, downsample=[2]), "downsample"),
])
def test_inconsistent_network_options_are_named(config, key):
    assert key in [k for k, _ in config.problems()]


def test_the_context_head_defaults_to_the_linear_map():
    assert DiffusionAmortizerConfig().context_head == "linear" and not DiffusionAmortizerConfig().project_condition
