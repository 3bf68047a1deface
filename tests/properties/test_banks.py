"""Replay banks: the three write rules, re-initialization, invariants under random use, and the
HDF5 round trip."""

import math

import pytest
import torch
from monte_carlo import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ebmgraph.engine.context import StepContext
from ebmgraph.errors import DataError
from ebmgraph.nodes.banks import ReplayBank, ReplayBankConfig
from ebmgraph.store.banks_h5 import load_banks, banks_bytes

CPU = torch.device("cpu")



# chi-square 0.999 quantile with 19 degrees of freedom (scipy.stats.chi2.ppf(0.999, 19))
CHI2_999_DF19 = 43.82019596451753


def _bank(bank_type: type[ReplayBank] = ReplayBank, **config) -> ReplayBank:
    config = ReplayBankConfig(**config)
    assert config.problems() == []
    return bank_type("bank", config, {}, CPU)


def _ctx(step: int, seed: int = 0) -> StepContext:
    return StepContext(seed, step, CPU)


def _ids(start: int, n: int, dim: int = 2) -> torch.Tensor:
    """Items whose every coordinate is their id, so stored items can be identified."""
    return torch.arange(start, start + n, dtype=torch.float32)[:, None].expand(n, dim).clone()


def _stored_ids(bank: ReplayBank) -> list[int]:
    return sorted(int(v) for v in bank.storage[: bank.size, 0].tolist())


def _rows_of(x: torch.Tensor, storage: torch.Tensor) -> torch.Tensor:
    """Index in ``storage`` of each row of ``x`` (rows must match exactly one storage row)."""
    matches = (x[:, None, :] == storage[None, :, :]).all(-1)
    assert (matches.sum(1) == 1).all()
    return matches.float().argmax(1)


# write rules -------------------------------------------------------------------------------------

def test_back_writes_exactly_the_drawn_indices():
    bank = _bank(capacity=20, write="back", reinit=0.0)
    like = torch.zeros(6, 3)
    for step in range(5):
        ctx = _ctx(step)
        x = bank(ctx, like=like)["x"]
        assert x.shape == (6, 3)
        drawn = _rows_of(x, bank.storage)
        assert len(set(drawn.tolist())) == 6  # drawn without replacement
        before, age_before = bank.storage.clone(), bank.age.clone()
        store = x + 100.0 + step
        bank.write(ctx, store=store)
        assert torch.equal(bank.storage[drawn], store)
        untouched = torch.ones(20, dtype=torch.bool)
        untouched[drawn] = False
        assert torch.equal(bank.storage[untouched], before[untouched])
        assert (bank.age[drawn] == step).all() and torch.equal(bank.age[untouched], age_before[untouched])
        assert bank.size == 20


def test_back_starts_full_of_init_samples():
    bank = _bank(capacity=50, write="back", init="uniform", init_low=2.0, init_high=3.0, reinit=0.0)
    x = bank(_ctx(0), like=torch.zeros(10, 4))["x"]
    assert bank.size == 50
    assert bank.storage.min() >= 2.0 and bank.storage.max() <= 3.0
    assert len(torch.unique(bank.storage[:, 0])) == 50  # not one repeated sample
    _rows_of(x, bank.storage)  # the first batch already comes from the bank


def test_back_with_reinit_writes_reinitialized_chains_back_to_their_slots():
    bank = _bank(capacity=8, write="back", reinit=1.0)
    bank(_ctx(0), like=torch.zeros(8, 1))
    bank.write(_ctx(0), store=_ids(0, 8, 1))  # capacity == batch: every slot drawn
    assert _stored_ids(bank) == list(range(8))


def test_fifo_keeps_exactly_the_newest_capacity_items():
    bank = _bank(capacity=10, write="fifo")
    written = 0
    for step in range(9):
        ctx = _ctx(step)
        x = bank(ctx, like=torch.zeros(4, 2))["x"]
        assert x.shape == (4, 2)
        bank.write(ctx, store=_ids(written, 4))
        written += 4
        assert bank.size == min(10, written)
        assert _stored_ids(bank) == list(range(max(0, written - 10), written))
        newest = bank.age[: bank.size][bank.storage[: bank.size, 0] >= written - 4]
        assert (newest == step).all() and len(newest) == 4


def test_fifo_batch_larger_than_capacity_keeps_the_last_items():
    bank = _bank(capacity=10, write="fifo")
    bank(_ctx(0), like=torch.zeros(13, 2))
    bank.write(_ctx(0), store=_ids(0, 13))
    assert bank.size == 10 and _stored_ids(bank) == list(range(3, 13))
    bank(_ctx(1), like=torch.zeros(13, 2))
    bank.write(_ctx(1), store=_ids(13, 13))
    assert _stored_ids(bank) == list(range(16, 26))


def test_draws_are_fresh_until_the_bank_holds_a_batch():
    bank = _bank(capacity=100, write="fifo", init="uniform", init_low=-1.0, init_high=1.0, reinit=0.0)
    ctx = _ctx(0)
    x = bank(ctx, like=torch.zeros(16, 2))["x"]
    assert x.abs().max() <= 1.0 and ctx.diagnostics["bank/reinit_fraction"] == 1.0
    bank.write(ctx, store=_ids(1000, 16))
    ctx = _ctx(1)
    x = bank(ctx, like=torch.zeros(16, 2))["x"]
    assert sorted(x[:, 0].tolist()) == list(range(1000, 1016))
    assert float(ctx.diagnostics["bank/reinit_fraction"]) == 0.0
    assert float(ctx.diagnostics["bank/age"]) == 1.0


def test_config_batch_size_overrides_the_like_batch():
    bank = _bank(capacity=30, write="reservoir", batch_size=5)
    ctx = _ctx(0)
    assert bank(ctx, like=torch.zeros(12, 3))["x"].shape == (5, 3)
    bank.write(ctx, store=_ids(0, 5, 3))
    assert bank.size == 5


def _reservoir_keep_counts(capacity: int, n_items: int, repetitions: int, batch: int,
                           bank_type: type[ReplayBank] = ReplayBank) -> torch.Tensor:
    counts = torch.zeros(n_items, dtype=torch.long)
    for repetition in range(repetitions):
        bank = _bank(bank_type, capacity=capacity, write="reservoir")
        for step, start in enumerate(range(0, n_items, batch)):
            ctx = _ctx(step, seed=repetition)
            if step == 0 or batch > 1:  # one-at-a-time writes skip most reads (they do not affect writes) for speed
                bank(ctx, like=torch.zeros(batch, 1))
            bank.write(ctx, store=_ids(start, batch, 1))
            assert bank.size <= capacity
        assert bank.size == capacity and bank.seen == n_items
        kept = _stored_ids(bank)
        assert len(set(kept)) == capacity  # no item stored twice, none lost
        counts[kept] += 1
    return counts


def _uniform_keep_statistic(counts: torch.Tensor, capacity: int, repetitions: int) -> float:
    """Each repetition keeps a uniform capacity-subset of N items: the indicator covariance is
    p (1 - p) N / (N - 1) times a rank N - 1 projection, so this statistic is chi-square(N - 1)."""
    n_items = len(counts)
    expected = repetitions * capacity / n_items
    return float(((counts.double() - expected) ** 2).sum() / expected * (n_items - 1) / (n_items - capacity))


class RecencyBiasedBank(ReplayBank):
    """A broken reservoir that, once full, always replaces a random slot (power check)."""

    def _reservoir_positions(self, ctx, n):
        positions = super()._reservoir_positions(ctx, n)
        full = positions < 0
        slots = torch.randint(0, self.config.capacity, (n,), generator=ctx.generator("broken"))
        return torch.where(full, slots, positions)


def test_uniformity_check_has_teeth():
    counts = _reservoir_keep_counts(5, 20, 500, 1, bank_type=RecencyBiasedBank)
    assert _uniform_keep_statistic(counts, 5, 500) > CHI2_999_DF19


@pytest.mark.parametrize("batch", [1, 4])
def test_reservoir_keeps_each_item_with_probability_capacity_over_n(batch):
    capacity, n_items, repetitions = 5, 20, 500
    counts = _reservoir_keep_counts(capacity, n_items, repetitions, batch).double()
    p = capacity / n_items
    expected = repetitions * p
    statistic = _uniform_keep_statistic(counts, capacity, repetitions)
    assert statistic < CHI2_999_DF19, (statistic, counts.tolist())
    # and every single item is within 5 binomial standard errors
    se = math.sqrt(repetitions * p * (1 - p))
    assert ((counts - expected).abs() < 5 * se).all(), counts.tolist()
    # the first items are not favoured (the classic bug of filling and never replacing)
    assert counts[:capacity].sum() < 2 * counts[capacity:2 * capacity].sum()


def test_reinit_fraction_matches_its_probability():
    p, batch, steps = 0.3, 500, 20
    bank = _bank(capacity=batch, write="back", reinit=p, init="uniform", init_low=-1.0, init_high=1.0)
    like = torch.zeros(batch, 2)
    bank(_ctx(0), like=like)
    bank.write(_ctx(0), store=torch.full((batch, 2), 10.0))  # capacity == batch: every slot now holds 10
    count_before = int(bank.reinit_count)  # the step-0 draw re-initialized some of the initial chains too
    fresh_total = 0
    for step in range(1, steps + 1):
        ctx = _ctx(step)
        x = bank(ctx, like=like)["x"]
        fresh = (x != 10.0).all(1)
        assert ((x == 10.0).all(1) | fresh).all()  # a row is either replayed or entirely fresh
        assert x[fresh].abs().max() <= 1.0
        assert float(ctx.diagnostics["bank/reinit_fraction"]) == pytest.approx(fresh.float().mean().item())
        fresh_total += int(fresh.sum())
        bank.write(ctx, store=torch.full((batch, 2), 10.0))
    n = batch * steps
    assert int(bank.reinit_count) - count_before == fresh_total
    assert abs(fresh_total / n - p) < 5 * math.sqrt(p * (1 - p) / n), fresh_total / n


@pytest.mark.parametrize("reinit, expected", [(0.0, 0.0), (1.0, 1.0)])
def test_reinit_edge_probabilities(reinit, expected):
    bank = _bank(capacity=64, write="back", reinit=reinit)
    ctx = _ctx(0)
    bank(ctx, like=torch.zeros(32, 2))
    assert float(ctx.diagnostics["bank/reinit_fraction"]) == expected


@pytest.mark.parametrize("field, value", [("capacity", 0), ("reinit", -0.1), ("reinit", 1.5)])
def test_config_problems(field, value):
    assert [key for key, _ in ReplayBankConfig(**{field: value}).problems()] == [field]


@settings(derandomize=True, deadline=None, max_examples=examples(40))
@given(write=st.sampled_from(["back", "fifo", "reservoir"]),
       capacity=st.integers(1, 12),
       batch=st.integers(1, 10),
       reinit=st.sampled_from([0.0, 0.5]),
       ops=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=15))
def test_size_never_exceeds_capacity_under_random_interleavings(write, capacity, batch, reinit, ops):
    bank = _bank(capacity=capacity, write=write, reinit=reinit)
    like = torch.zeros(batch, 2)
    written = 0
    for step, (read, do_write) in enumerate([(True, True)] + ops):
        ctx = _ctx(step, seed=step * 7 + capacity)
        if read:
            x = bank(ctx, like=like)["x"]
            assert x.shape == (batch, 2) and torch.isfinite(x).all()
        if do_write:
            bank.write(ctx, store=_ids(written, batch))
            written += batch
        assert 0 <= bank.size <= capacity
        assert bank.storage.shape == (capacity, 2) and bank.age.shape == (capacity,)
        assert (bank.age <= step).all()
        if write == "fifo":
            assert bank.size == min(capacity, written)
            assert _stored_ids(bank) == list(range(max(0, written - capacity), written))
        if write == "reservoir":
            assert bank.seen == written and bank.size == min(capacity, written)
            kept = _stored_ids(bank)
            assert len(set(kept)) == len(kept) and all(0 <= i < written for i in kept)
        if write == "back":
            assert bank.size == capacity


# HDF5 round trip ---------------------------------------------------------------------------------

def _run(bank: ReplayBank, steps: range, batch: int = 6) -> None:
    for step in steps:
        ctx = _ctx(step)
        x = bank(ctx, like=torch.zeros(batch, 3))["x"]
        bank.write(ctx, store=x * 0.5 + step)


@pytest.mark.parametrize("write", ["back", "fifo", "reservoir"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_hdf5_round_trip_restores_state_and_future_draws(tmp_path, write, dtype):
    config = dict(capacity=16, write=write, reinit=0.25, dtype=dtype)
    bank = _bank(**config)
    _run(bank, range(5))
    path = tmp_path / "banks.h5"
    path.write_bytes(banks_bytes({"bank": bank}, 5))

    restored = _bank(**config)
    load_banks(path, {"bank": restored}, step=5)
    assert restored.storage.dtype == bank.storage.dtype == getattr(torch, dtype)
    assert torch.equal(restored.storage, bank.storage)
    assert torch.equal(restored.age, bank.age)
    assert (restored.size, restored.seen, restored.pointer) == (bank.size, bank.seen, bank.pointer)
    assert int(restored.reinit_count) == int(bank.reinit_count) > 0

    for step in range(5, 9):
        ctx_a, ctx_b = _ctx(step), _ctx(step)
        x_a, x_b = bank(ctx_a, like=torch.zeros(6, 3))["x"], restored(ctx_b, like=torch.zeros(6, 3))["x"]
        assert torch.equal(x_a, x_b), step
        assert ctx_a.diagnostics.keys() == ctx_b.diagnostics.keys()
        for key in ctx_a.diagnostics:
            assert torch.equal(torch.as_tensor(ctx_a.diagnostics[key]), torch.as_tensor(ctx_b.diagnostics[key])), key
        bank.write(ctx_a, store=x_a + step)
        restored.write(ctx_b, store=x_b + step)
        assert torch.equal(restored.storage, bank.storage) and torch.equal(restored.age, bank.age)


def test_hdf5_round_trip_of_several_banks_and_an_unread_bank(tmp_path):
    first, second, unread = _bank(capacity=8, write="fifo"), _bank(capacity=5, write="reservoir"), _bank()
    _run(first, range(3), batch=3)
    _run(second, range(4), batch=2)
    path = tmp_path / "banks.h5"
    path.write_bytes(banks_bytes({"first": first, "second": second, "unread": unread}, 4))
    copies = {"first": _bank(capacity=8, write="fifo"), "second": _bank(capacity=5, write="reservoir"),
              "unread": _bank()}
    load_banks(path, copies, step=4)
    for name, original in (("first", first), ("second", second)):
        assert torch.equal(copies[name].storage, original.storage), name
        assert copies[name].seen == original.seen and copies[name].pointer == original.pointer, name
    assert copies["unread"].storage is None and copies["unread"].size == 0


def test_load_with_the_wrong_step_raises_a_data_error_naming_the_file(tmp_path):
    bank = _bank(capacity=8, write="fifo")
    _run(bank, range(2))
    path = tmp_path / "banks.h5"
    path.write_bytes(banks_bytes({"bank": bank}, 2))
    with pytest.raises(DataError) as error:
        load_banks(path, {"bank": _bank(capacity=8, write="fifo")}, step=3)
    assert str(path) in str(error.value) and "step 2" in str(error.value) and "step 3" in str(error.value)


def test_load_missing_file_or_bank_raises_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "missing.h5"
    with pytest.raises(DataError, match="missing.h5"):
        load_banks(path, {"bank": _bank()}, step=0)
    bank = _bank(capacity=8, write="fifo")
    _run(bank, range(1))
    path = tmp_path / "banks.h5"
    path.write_bytes(banks_bytes({"bank": bank}, 1))
    with pytest.raises(DataError) as error:
        load_banks(path, {"other": _bank()}, step=1)
    assert str(path) in str(error.value) and "'other'" in str(error.value)
