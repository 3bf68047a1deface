"""Whole training steps for benchmarks/speed.py: each graph's compiled step (``Program.step``)
against the same algorithm written by hand in plain torch, with the same initial weights, the
same data batches (the graph's own data node) and the same random draws (generators seeded as
the engine seeds its nodes), so the two give equal losses before they are timed.

Hand-written: short_run (K Langevin steps from uniform noise, CD), igebm (a reservoir replay
buffer with 5 % restarts, clipped and clamped Langevin, CD + alpha (E+^2 + E-^2)) and
improved_cd (the same buffer with a history set, a kornia crop and color augmentation, Langevin
with a graph through the last step, CD + regularizer + L_opt + L_ent, gradient-norm clipping
and the EMA), cooperative (the generator's proposals revised by Langevin, CD and the generator's
fit -log p(x~, z)) and dual_mcmc (eq. 17-21: x-chains from N(g(z), sigma^2 I), z-chains on the
posterior from the encoder's draw, three optimizers)."""

from __future__ import annotations

import copy

import kornia.augmentation as K
import numpy as np
import torch
from torch.func import functional_call
from torch.nn.utils import parametrize

from ebmgraph.engine.context import StepContext, derive_seed
from ebmgraph.engine.load import load_graph
from ebmgraph.engine.program import Program

GRAPHS = ("short_run", "igebm", "improved_cd", "cooperative", "dual_mcmc")
LOG_2PI = float(np.log(2 * np.pi))


def engine_and_hand(graph: str, overrides: tuple[str, ...] = (), profile: str | None = None):
    """(the graph's program, the hand-written step) from the same initial weights."""
    spec = load_graph(f"graphs/{graph}.yaml", profile, ("train.progress=false", *overrides))
    program = Program(spec)
    hand = HAND[graph](spec, Program(spec))
    return program, hand


def engine_step(program: Program, step: int) -> dict[str, float]:
    """One compiled step as an unlogged training step runs it."""
    losses, _, _ = program.step(step, diagnostics_wanted=False)
    return {name: loss.item() for name, loss in losses.items()}


class HandStep:
    """Shared set-up: the models (copied before any step), an Adam optimizer as the graph sets it,
    the graph's data node, and generators seeded like the engine's."""

    def __init__(self, spec, program: Program):
        self.spec, self.device = spec, program.device
        self.data = program.nodes["data"]
        self.energy = copy.deepcopy(program.models["energy"])
        self.optimizer = self.adam("energy_optimizer", self.energy)
        self.kernel = spec.nodes[self.kernel_node].config

    kernel_node = "negatives"

    def adam(self, name: str, model: torch.nn.Module) -> torch.optim.Adam:
        config = self.spec.optimizers[name].config
        return torch.optim.Adam(model.parameters(), lr=config.lr, betas=tuple(config.betas))

    def generator(self, name: str, step: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(derive_seed(self.spec.seed, name, step, 0))

    def batch(self, step: int) -> torch.Tensor:
        return self.data(StepContext(self.spec.seed, step, self.device, diagnostics_wanted=False))["x"]

    def langevin(self, x: torch.Tensor, steps: int, generator: torch.Generator, graph_last: bool = False):
        """``steps`` steps of x - a grad E + b xi (clipped by value, clamped as the kernel says),
        parameters frozen; with ``graph_last`` the last step keeps a graph to the parameters."""
        self.energy.requires_grad_(False)
        with parametrize.cached():
            for _ in range(steps - graph_last):
                x = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
                x = self.move(x, grad, generator)
        self.energy.requires_grad_(True)
        if not graph_last:
            return x.detach(), x.detach()
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.energy(x).sum(), x, create_graph=True)
        x_hat = self.move(x, grad, generator)
        return x_hat.detach(), x_hat

    def move(self, x, grad, generator, kernel=None):
        c = kernel or self.kernel
        if c.clip_grad_value is not None:
            grad = grad.clamp(-c.clip_grad_value, c.clip_grad_value)
        a, b, _ = c.resolved()
        x = x - a * grad + b * torch.randn(x.shape, generator=generator, device=x.device)
        return x.clamp(*c.clamp) if c.clamp is not None else x


class ShortRun(HandStep):
    def __call__(self, step: int) -> dict[str, float]:
        positive = self.batch(step)
        x0 = torch.rand(positive.shape, generator=self.generator("noise", step), device=self.device) * 2 - 1
        negative, _ = self.langevin(x0, self.kernel.steps, self.generator("negatives", step))
        cd = self.energy(positive).mean() - self.energy(negative).mean()
        self.optimizer.zero_grad()
        cd.backward()
        self.optimizer.step()
        return {"cd": cd.item()}


class ReservoirBank:
    """A replay buffer filled by reservoir sampling; a draw restarts a fraction from U[-1, 1]."""

    def __init__(self, capacity: int, reinit: float, history: int, device, generator):
        self.capacity, self.reinit, self.history, self.device = capacity, reinit, history, device
        self.generator = generator
        self.storage, self.seen = None, 0

    def draw(self, step: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.storage is None:
            self.storage = torch.zeros((self.capacity, *like.shape[1:]), device=self.device)
        size, batch = min(self.seen, self.capacity), len(like)
        read = self.generator("bank:read", step)
        fresh = torch.rand(like.shape, generator=read, device=self.device) * 2 - 1
        history = self.storage[:0]
        if self.history and size >= self.history:
            history = self.storage[torch.randperm(size, generator=self.generator("bank:history", step),
                                                  device=self.device)[:self.history]]
        if size < batch:
            return fresh, history
        index = torch.randperm(size, generator=read, device=self.device)[:batch]
        restart = torch.rand(batch, generator=read, device=self.device) < self.reinit
        return torch.where(restart.view(-1, 1, 1, 1), fresh, self.storage[index]), history

    def write(self, step: int, x: torch.Tensor) -> None:
        n = len(x)
        count = self.seen + 1 + torch.arange(n, device=self.device)
        slot = (torch.rand(n, generator=self.generator("bank:write", step), device=self.device) * count).long()
        position = torch.where(count <= self.capacity, count - 1, torch.where(slot < self.capacity, slot, -1))
        reversed_positions = position.flip(0).cpu().numpy()
        _, first = np.unique(reversed_positions, return_index=True)  # the last write to a slot wins
        keep = torch.as_tensor(n - 1 - first, device=self.device)
        keep = keep[position[keep] >= 0]
        self.storage[position[keep]] = x[keep].detach()
        self.seen += n


class Igebm(HandStep):
    def __init__(self, spec, program):
        super().__init__(spec, program)
        bank = spec.nodes["bank"].config
        self.bank = ReservoirBank(bank.capacity, bank.reinit, 0, self.device, self.generator)
        self.alpha = spec.losses["regularizer"].config.alpha

    def __call__(self, step: int) -> dict[str, float]:
        positive = self.batch(step)
        x0, _ = self.bank.draw(step, positive)
        negative, _ = self.langevin(x0, self.kernel.steps, self.generator("negatives", step))
        e_pos, e_neg = self.energy(positive), self.energy(negative)
        cd = e_pos.mean() - e_neg.mean()
        regularizer = self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        self.optimizer.zero_grad()
        (cd + regularizer).backward()
        self.optimizer.step()
        self.bank.write(step, negative)
        return {"cd": cd.item(), "regularizer": regularizer.item()}


class ImprovedCd(Igebm):
    def __init__(self, spec, program):
        super().__init__(spec, program)
        bank, augment = spec.nodes["bank"].config, spec.nodes["augmented"].config
        self.bank.history = bank.history
        s = augment.color_strength
        self.augment = K.AugmentationSequential(K.RandomResizedCrop(tuple(program.nodes["data"].sample_shape[1:]),
                                                                    scale=tuple(augment.crop_scale)),
                                                K.ColorJitter(0.8 * s, 0.8 * s, 0.0, 0.0, p=0.8))
        self.ema = copy.deepcopy(program.models["energy_ema"])
        self.decay = spec.models["energy_ema"].config.decay
        self.clip = spec.optimizers["energy_optimizer"].clip_grad_norm

    def augmented(self, x: torch.Tensor, step: int) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (), generator=self.generator("augmented", step)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return (self.augment(((x + 1) / 2).clamp(0, 1)) * 2 - 1).clamp(-1, 1)

    def __call__(self, step: int) -> dict[str, float]:
        positive = self.batch(step)
        x0, history = self.bank.draw(step, positive)
        negative, x_hat = self.langevin(self.augmented(x0, step), self.kernel.steps,
                                        self.generator("negatives", step), graph_last=True)
        e_pos, e_neg = self.energy(positive), self.energy(negative)
        cd = e_pos.mean() - e_neg.mean()
        regularizer = self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        fixed = {name: t.detach() for name, t in (*self.energy.named_parameters(), *self.energy.named_buffers())}
        kl_opt = functional_call(self.energy, fixed, (x_hat,)).mean()
        kl_entropy = torch.zeros(())
        if len(history):
            distances = torch.cdist(x_hat.flatten(1), history.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
            kl_entropy = -distances.min(dim=1).values.log().mean()
        self.optimizer.zero_grad()
        (cd + regularizer + kl_opt + kl_entropy).backward()
        torch.nn.utils.clip_grad_norm_(self.energy.parameters(), self.clip)
        self.optimizer.step()
        self.bank.write(step, negative)
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.energy.parameters()), 1.0 - self.decay)
        return {"cd": cd.item(), "regularizer": regularizer.item(), "kl_opt": kl_opt.item(),
                "kl_entropy": kl_entropy.item()}


def generator_log_joint(generator, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log N(x; g(z), sigma^2 I) + log N(z; 0, I) per sample."""
    sigma, pixels, latents = generator.sigma, x[0].numel(), z.shape[1]
    return (-(x - generator(z)).pow(2).flatten(1).sum(1) / (2 * sigma**2)
            - 0.5 * pixels * (LOG_2PI + 2 * np.log(sigma)) - 0.5 * (z.pow(2).sum(1) + latents * LOG_2PI))


class Cooperative(HandStep):
    kernel_node = "revised"

    def __init__(self, spec, program):
        super().__init__(spec, program)
        self.generator_model = copy.deepcopy(program.models["generator"])
        self.generator_optimizer = self.adam("generator_optimizer", self.generator_model)

    def prior(self, step: int, like: torch.Tensor) -> torch.Tensor:
        latent = self.generator_model.latent_shape
        return torch.randn((len(like), *latent), generator=self.generator("prior_z", step), device=self.device)

    def __call__(self, step: int) -> dict[str, float]:
        positive = self.batch(step)
        z = self.prior(step, positive)
        with torch.no_grad():
            proposal = self.generator_model(z)
        revised, _ = self.langevin(proposal, self.kernel.steps, self.generator("revised", step))
        ebm = self.energy(positive).mean() - self.energy(revised).mean()
        generator_fit = -generator_log_joint(self.generator_model, revised, z).mean()
        for optimizer in (self.optimizer, self.generator_optimizer):
            optimizer.zero_grad()
        (ebm + generator_fit).backward()
        for optimizer in (self.optimizer, self.generator_optimizer):
            optimizer.step()
        return {"ebm": ebm.item(), "generator_fit": generator_fit.item()}


class DualMcmc(Cooperative):
    kernel_node = "revised_x"

    def __init__(self, spec, program):
        super().__init__(spec, program)
        self.encoder = copy.deepcopy(program.models["encoder"])
        self.encoder_optimizer = self.adam("encoder_optimizer", self.encoder)
        self.z_kernel = spec.nodes["revised_z"].config

    def encoder_log_prob(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log N(z; mu(x), diag V(x)) per sample."""
        mean, log_variance = self.encoder(x)
        return -0.5 * ((z - mean).pow(2) / log_variance.exp() + log_variance + LOG_2PI).sum(1)

    def posterior_chain(self, x: torch.Tensor, z: torch.Tensor, step: int) -> torch.Tensor:
        """eq. 21: Langevin on U(z) = -log p(x|z) - log p(z), the generator frozen."""
        generator = self.generator("revised_z", step)
        self.generator_model.requires_grad_(False)
        for _ in range(self.z_kernel.steps):
            z = z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(-generator_log_joint(self.generator_model, x, z).sum(), z)
            z = self.move(z, grad, generator, self.z_kernel)
        self.generator_model.requires_grad_(True)
        return z.detach()

    def __call__(self, step: int) -> dict[str, float]:
        positive = self.batch(step)
        z = self.prior(step, positive)
        with torch.no_grad():
            mean = self.generator_model(z)
        x0 = mean + self.generator_model.sigma * torch.randn(mean.shape, generator=self.generator("generated", step),
                                                             device=self.device)
        revised_x, _ = self.langevin(x0, self.kernel.steps, self.generator("revised_x", step))
        with torch.no_grad():
            mu, log_variance = self.encoder(positive)
        z_hat = mu + (0.5 * log_variance).exp() * torch.randn(mu.shape, generator=self.generator("inferred_z", step),
                                                              device=self.device)
        revised_z = self.posterior_chain(positive, z_hat, step)
        losses = {"ebm": self.energy(positive).mean() - self.energy(revised_x).mean(),
                  "generator_on_data": -generator_log_joint(self.generator_model, positive, revised_z).mean(),
                  "generator_on_samples": -generator_log_joint(self.generator_model, revised_x, z).mean(),
                  "encoder_on_data": -self.encoder_log_prob(revised_z, positive).mean(),
                  "encoder_on_samples": -self.encoder_log_prob(z, revised_x).mean()}
        optimizers = (self.optimizer, self.generator_optimizer, self.encoder_optimizer)
        for optimizer in optimizers:
            optimizer.zero_grad()
        sum(losses.values()).backward()
        for optimizer in optimizers:
            optimizer.step()
        return {name: loss.item() for name, loss in losses.items()}


HAND = {"short_run": ShortRun, "igebm": Igebm, "improved_cd": ImprovedCd, "cooperative": Cooperative,
        "dual_mcmc": DualMcmc}


def assert_equal_losses(program: Program, hand: HandStep, steps: int) -> None:
    """Both sides' losses over their first ``steps`` steps agree to float rounding."""
    for step in range(steps):
        engine, by_hand = engine_step(program, step), hand(step)
        for name, value in engine.items():
            if not np.isclose(value, by_hand[name], rtol=1e-4, atol=1e-5):
                raise AssertionError(f"step {step}: {name} {value} by the engine, {by_hand[name]} by hand")
