"""Augmentation transitions (Improved CD, Section 2.3): shape, dtype and value range are kept,
the horizontal flip is an involution, and the node's generator fixes the output."""

import pytest
import torch
from monte_carlo import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ebmgraph.nodes.augment import Augment, AugmentConfig

CPU = torch.device("cpu")
FLIP_ONLY = AugmentConfig(crop_scale=None, flip=True, color_strength=0.0, grayscale=0.0, blur_kernel=None)


def _augment(config: AugmentConfig, x: torch.Tensor, seed: int) -> torch.Tensor:
    return Augment("augmented", config, {}, CPU).augment(x, torch.Generator().manual_seed(seed))


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: equal up to the rounding of the map to [0, 1] and back."""
    return torch.isclose(a, b, rtol=0, atol=1e-6).flatten(1).all(1)


def keeps_shape_dtype_and_range(transform, x: torch.Tensor, low: float, high: float) -> bool:
    y = transform(x)
    return y.shape == x.shape and y.dtype == x.dtype and bool(((y >= low) & (y <= high)).all())


configs = st.builds(
    AugmentConfig,
    crop_scale=st.one_of(st.none(), st.tuples(st.floats(0.05, 0.5), st.floats(0.5, 1.0))),
    flip=st.booleans(),
    color_strength=st.floats(0.0, 1.5),
    grayscale=st.floats(0.0, 1.0),
    blur_kernel=st.sampled_from([None, 3, 5]),
    value_range=st.sampled_from([(-1.0, 1.0), (0.0, 1.0)]),
)


@settings(derandomize=True, deadline=None, max_examples=examples(30))
@given(config=configs, channels=st.sampled_from([1, 3]), size=st.sampled_from([8, 12, 16]),
       batch=st.integers(1, 6), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31))
def test_shape_dtype_and_range_are_kept(config, channels, size, batch, dtype, seed):
    low, high = config.value_range
    x = torch.rand((batch, channels, size, size), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    x = x * (high - low) + low
    assert keeps_shape_dtype_and_range(lambda images: _augment(config, images, seed), x, low, high)


def test_range_check_has_teeth():
    """Power check: a transition that leaves the range (brightness without the clamp back) fails."""
    x = torch.rand((4, 3, 8, 8)) * 2 - 1
    assert not keeps_shape_dtype_and_range(lambda images: images * 1.5, x, -1.0, 1.0)


@settings(derandomize=True, deadline=None, max_examples=examples(20))
@given(batch=st.integers(1, 16), seed=st.integers(0, 2**31))
def test_flip_is_an_involution_and_only_mirrors(batch, seed):
    x = torch.rand((batch, 1, 8, 8), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    once = _augment(FLIP_ONLY, x, seed)
    kept, mirrored = (_same(once, x), _same(once, x.flip(-1)))
    assert (kept | mirrored).all()
    torch.testing.assert_close(_augment(FLIP_ONLY, once, seed), x, rtol=0, atol=1e-6)


def test_flip_flips_about_half_the_images():
    """Binomial(512, 1/2): the flipped count lies within 5 standard deviations of 256."""
    x = torch.rand((512, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    flipped = (~_same(_augment(FLIP_ONLY, x, 1), x)).sum().item()
    assert abs(flipped - 256) < 5 * (512 * 0.25) ** 0.5


@pytest.mark.parametrize("channels", [1, 3])
def test_same_seed_same_output_and_another_seed_another(channels):
    config = AugmentConfig(blur_kernel=3)
    x = torch.rand((8, channels, 16, 16), generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(_augment(config, x, 5), _augment(config, x, 5), rtol=0, atol=0)
    assert not torch.equal(_augment(config, x, 5), _augment(config, x, 6))


def test_the_global_random_state_is_left_alone():
    x = torch.zeros((2, 3, 8, 8))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _augment(AugmentConfig(), x, 0)
    assert torch.equal(torch.rand(3), expected)
