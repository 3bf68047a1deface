import attrs
import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from ebmgraph.nodes.energies import ConvEnergy, MLPEnergy
from ebmgraph.nodes.registry import MODELS
from ebmgraph.viz.grids import image_grid, save_samples_png

CASES = [
    (MLPEnergy, {}, (2,)),
    (MLPEnergy, {"activation": "elu", "layers": 1}, (3, 4)),
    (ConvEnergy, {}, (1, 8, 8)),
    (ConvEnergy, {"channels": 8, "stages": 3, "blocks_per_stage": 2, "activation": "swish"}, (3, 32, 32)),
]


def build(model_type, overrides, shape, **more):
    return model_type.build(model_type.Config(**{**overrides, **more}), shape)


def test_registered_as_energies():
    for name in ("mlp_energy", "conv_energy"):
        assert MODELS.get(name).role == "energy"
        assert MODELS.get(name).doc()
        attrs.fields(MODELS.get(name).Config)


@pytest.mark.parametrize("model_type,overrides,shape", CASES)
def test_energy_shape_and_gradient(model_type, overrides, shape):
    torch.manual_seed(0)
    model = build(model_type, overrides, shape)
    x = torch.randn(5, *shape, requires_grad=True)
    energy = model(x)
    assert energy.shape == (5,)
    (grad,) = torch.autograd.grad(energy.sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all()


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("model_type,overrides,shape", CASES)
def test_meta_build_and_forward(model_type, overrides, shape, spectral_norm):
    with torch.device("meta"):
        model = build(model_type, overrides, shape, spectral_norm=spectral_norm)
    out = model(torch.empty(4, *shape, device="meta"))
    assert out.shape == (4,) and out.device.type == "meta"


@pytest.mark.parametrize("model_type,overrides,shape", CASES)
def test_spectral_norm_on_every_layer(model_type, overrides, shape):
    model = build(model_type, overrides, shape, spectral_norm=True)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    plain = build(model_type, overrides, shape)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_wrong_shapes_raise():
    conv = build(ConvEnergy, {}, (1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        conv(torch.randn(4, 2))
    with pytest.raises(ValueError, match="shape"):
        conv(torch.randn(4, 3, 8, 8))
    mlp = build(MLPEnergy, {}, (2,))
    with pytest.raises(ValueError, match="shape"):
        mlp(torch.randn(4, 3))
    with pytest.raises(ValueError):
        build(ConvEnergy, {}, (2,))
    with pytest.raises(ValueError, match="too small"):
        build(ConvEnergy, {"stages": 4}, (1, 8, 8))


def test_image_grid_shape_and_range():
    grid = image_grid(torch.linspace(-2, 2, 10 * 64).reshape(10, 1, 8, 8), nrow=5)
    assert grid.shape == (2 * 9 + 1, 5 * 9 + 1, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_array_equal(grid[..., 0], grid[..., 2])
    assert image_grid(torch.zeros(7, 3, 4, 4)).shape == (3 * 5 + 1, 3 * 5 + 1, 3)


def test_save_image_png(tmp_path):
    path = tmp_path / "deep" / "dir" / "digits.png"
    save_samples_png(torch.rand(10, 1, 8, 8) * 2 - 1, path, title="step 0")
    assert path.stat().st_size > 0
    assert [p.name for p in path.parent.iterdir()] == ["digits.png"]


def test_save_points_png(tmp_path):
    data = torch.randn(500, 2)
    samples = torch.cat([torch.randn(100, 2) * 2, torch.tensor([[float("nan"), 0.0]])])
    save_samples_png(samples, tmp_path / "with_ref.png", title="ring", reference=data)
    save_samples_png(samples, tmp_path / "alone.png")
    assert (tmp_path / "with_ref.png").stat().st_size > 0
    assert (tmp_path / "alone.png").stat().st_size > 0


def test_save_rejects_other_shapes(tmp_path):
    with pytest.raises(ValueError):
        save_samples_png(torch.zeros(4, 3), tmp_path / "x.png")
