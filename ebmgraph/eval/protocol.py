"""Evaluation as a graph's ``eval`` section declares it: draw samples (fresh chains or a bank), then
compute the metrics that apply to the data, with the EMA copy of the energy when there is one."""

from __future__ import annotations

import math
import time

import attrs
import torch
from tqdm import tqdm

from ebmgraph.engine.context import StepContext
from ebmgraph.engine.program import Program
from ebmgraph.nodes.catalog import MODELS
from ebmgraph.nodes.noise import GaussianConfig, UniformConfig
from ebmgraph.nodes.registry import DerivedModelType
from ebmgraph.nodes.toys import TOY_TYPES
from ebmgraph.spec.schema import CONDITIONAL_METRICS

EVAL_SEED_LABEL = "eval"
MCMC_CHAINS = 64  # chains of the mcmc diagnostics (at most eval.n)
MCMC_MIN_STEPS = 8  # chain steps the mcmc diagnostics need (half of them are kept)


def evaluation_model(spec, name: str) -> str:
    """The EMA copy of model ``name`` when the graph has one, else ``name``."""
    for other, model in spec.models.items():
        if issubclass(MODELS.get(model.type), DerivedModelType) and model.config.of == name:
            return other
    return name


def default_metrics(data, latent: bool = False, classifier: bool = False, chains: bool = False) -> list[str]:
    """Every metric that applies to the data node: test accuracy for a ``classifier`` energy (one
    with logits) on data with test labels, fd and modes for digits, the exact density metrics for
    2-D toys; every data set gets OOD detection, unless the energy is on latents; ``chains`` of a
    kernel (of at least MCMC_MIN_STEPS steps) get their mcmc diagnostics."""
    metrics = ["accuracy"] if classifier and getattr(data, "test_labels", None) is not None else []
    if data.type_name == "digits":
        metrics += ["fd", "modes"]
    if data.type_name in TOY_TYPES:
        metrics.append("density")
    return metrics + ([] if latent else ["ood"]) + (["mcmc"] if chains else [])


def _label(label: str, chunk: int | str | None) -> str:
    """The randomness label of chunk ``chunk`` of a chunked draw or of a named draw (unchunked: ``label`` itself)."""
    return label if chunk is None else f"{label}:chunk{chunk}"


class Evaluation:
    """Draws evaluation samples and computes metrics for a Program (trained or restored)."""

    def __init__(self, program: Program, energy: tuple[str, torch.nn.Module] | None = None):
        """``energy`` (name, module) replaces the evaluation energy (e.g. a composition of runs)."""
        self.program = program
        self.spec = program.spec
        self.eval = program.spec.eval
        self.data = program.nodes["data"]
        kernels = program.plan.kernels()
        self.kernel_name = self.eval.kernel or (kernels[0] if kernels else None)
        source = self.eval.energy or self._kernel_energy()
        self.energy_name = evaluation_model(self.spec, source) if source else None
        self._energy = None
        if energy is not None:
            self.energy_name, self._energy = energy

    def _kernel_energy(self) -> str | None:
        if self.kernel_name is None:
            return None
        return self.spec.all_nodes()[self.kernel_name].inputs["energy"]

    @property
    def energy(self) -> torch.nn.Module:
        return self._energy if self._energy is not None else self.program.models[self.energy_name]

    def context(self) -> StepContext:
        return StepContext(self.spec.seed, step=0, device=self.program.device)

    def chain_steps(self, steps: int | None = None) -> int:
        """Steps of fresh evaluation chains: ``steps``, else eval.steps, else the kernel's."""
        if steps is not None:
            return steps
        return self.eval.steps if self.eval.steps is not None else self.program.nodes[self.kernel_name].config.steps

    def draw(self, n: int | None = None, steps: int | None = None) -> torch.Tensor:
        """``n`` evaluation samples: fresh chains through the kernel's settings (in chunks of
        eval.batch_size, each with its own randomness), or bank contents."""
        n = n or self.eval.n
        ctx = self.context()
        if self.eval.source == "bank":
            bank = self.program.nodes[self.eval.bank or next(iter(self.program.banks()))]
            return bank.state_dict().draw(n, ctx.generator(f"{EVAL_SEED_LABEL}:bank"))
        size = self.eval.batch_size or n
        chunks = [(start // size if n > size else None, min(size, n - start)) for start in range(0, n, size)]
        return torch.cat([self.decoded(self.chains(self.initial_states(count, chunk), self.chain_steps(steps),
                                                   chunk=chunk))
                          for chunk, count in tqdm(chunks, desc="evaluation chains", unit="chunk",
                                                   disable=len(chunks) == 1, leave=False)])

    def decoded(self, states: torch.Tensor) -> torch.Tensor:
        """The samples that chain ``states`` stand for: g(z) of the ``decode`` generator, else themselves."""
        if self.eval.decode is None:
            return states
        with torch.no_grad():
            return self.program.models[self.eval.decode](states)

    def chains(self, init: torch.Tensor, end: int, start: int = 0, chunk: int | str | None = None,
               energy: torch.nn.Module | None = None) -> torch.Tensor:
        """Chain steps ``start`` to ``end`` of the kernel's chain and settings (no differentiable
        steps) on the evaluation energy, from ``init`` (the states after step ``start``). With
        ``eval.augment``, an augmentation transition comes before every step that is a multiple of
        ``augment_every`` (Improved CD, Algorithm 2). A segment starting at step s draws its
        randomness at step s (and, for chunk ``chunk`` of a chunked draw, its own). ``energy``
        replaces the evaluation energy (e.g. a conditional one)."""
        kernel = self.program.nodes[self.kernel_name]
        model = self.energy if energy is None else energy
        energy = kernel.sampled_energy(model)
        every = self.eval.augment_every if self.eval.augment else None
        cuts = sorted({start, end} | ({s for s in range(start, end) if s % every == 0} if every else set()))
        x = init
        for first, last in zip(cuts, cuts[1:]):
            ctx = StepContext(self.spec.seed, step=first, device=self.program.device)
            if every and first % every == 0:
                x = self.program.nodes[self.eval.augment].augment(x, ctx.generator(_label(self.eval.augment, chunk)))
            state, _ = kernel.chain(energy, x, attrs.evolve(kernel.config, steps=last - first),
                                    ctx.generator(_label(self.kernel_name, chunk)), (model,))
            x = state.position
        return x

    def initial_states(self, n: int, chunk: int | str | None = None) -> torch.Tensor:
        """The states fresh evaluation chains start from (latents when the chains ``decode``)."""
        e, device = self.eval, self.program.device
        generator = self.context().generator(_label(f"{EVAL_SEED_LABEL}:init", chunk))
        if e.init == "generator":
            model = self.program.models[e.generator]
            with torch.no_grad():
                x = model(torch.randn((n, *model.latent_shape), generator=generator, device=device))
            if e.generator_noise:  # a draw of p(x | z) = N(g(z), sigma^2 I), not its mean
                x = x + model.sigma * torch.randn(x.shape, generator=generator, device=device)
            return x
        if e.init == "amortizer":
            model = self.program.models[e.amortizer]
            with torch.no_grad():
                return model.sample(model.unconditional_context(n, device), generator)
        noise = UniformConfig(e.low, e.high) if e.init == "uniform" else GaussianConfig(e.std)
        shape = self.program.models[e.decode].latent_shape if e.decode else self.data.sample_shape
        return noise.draw((n, *shape), generator, device)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """In-distribution score for OOD detection: -E(x) of the evaluation energy, or with
        ``score: joint`` -s(x) of CLEL eq. 14."""
        from ebmgraph.eval.conditional import joint_score

        x = x.to(self.program.device)
        if self.eval.score == "joint":
            return joint_score(self.spherical_energy, self.representation)(x).float().cpu()
        with torch.no_grad():
            return -self.energy(x).float().cpu()

    @property
    def spherical_energy(self) -> torch.nn.Module:
        """The evaluation energy, which ``score: joint`` and the conditional metrics need spherical."""
        from ebmgraph.nodes.spherical import SphericalEnergyNet

        if not isinstance(self.energy, SphericalEnergyNet):
            raise ValueError(f"score 'joint' and the metrics {', '.join(CONDITIONAL_METRICS)} need a spherical_energy "
                             f"(CLEL eq. 10); the evaluation energy '{self.energy_name}' is a "
                             f"{type(self.energy).__name__}")
        return self.energy

    @property
    def representation(self) -> torch.nn.Module:
        """The representation encoder of eval.representation (its EMA copy when there is one)."""
        return self.program.models[evaluation_model(self.spec, self.eval.representation)]

    def conditional_samples(self, energy: torch.nn.Module, n: int, label: str) -> torch.Tensor:
        """``n`` fresh evaluation chains of ``energy`` (from the usual initial states), randomness labelled ``label``."""
        return self.chains(self.initial_states(n, chunk=label), self.chain_steps(), chunk=label,
                           energy=energy).detach().float().cpu()

    def metrics(self, samples: torch.Tensor) -> dict:
        classifier = self.energy_name is not None and hasattr(self.energy, "logits")
        wanted = (self.eval.metrics if self.eval.metrics is not None
                  else default_metrics(self.data, latent=self.eval.decode is not None, classifier=classifier,
                                       chains=self.eval.source == "chains" and self.kernel_name is not None
                                       and self.chain_steps() >= MCMC_MIN_STEPS))
        samples = samples.detach().float().cpu()
        out: dict = {}
        for metric in wanted:
            out.update(getattr(self, f"_{metric}")(samples))
        return out

    def _accuracy(self, samples):
        from ebmgraph.eval.accuracy import classification_accuracy

        labels = getattr(self.data, "test_labels", None)
        if not hasattr(self.energy, "logits") or labels is None:
            raise ValueError(f"metric 'accuracy' needs a classifier energy (one with logits, e.g. conv_classifier) and "
                             f"data with test labels; energy '{self.energy_name}' on data '{self.data.type_name}'")
        return {"accuracy": classification_accuracy(self.energy, self.data.test_split(), labels, self.program.device)}

    def _fd(self, samples):
        from ebmgraph.eval.frechet import digits_fd

        return digits_fd(samples)

    def _modes(self, samples):
        from ebmgraph.eval.modes import mode_coverage

        return mode_coverage(samples)

    @property
    def sampling_temperature(self) -> float | None:
        """The effective temperature of the kernel's chains (they sample exp(-E / T_eff)), if any."""
        if self.kernel_name is None:
            return None
        return getattr(self.program.nodes[self.kernel_name].config, "effective_temperature", None)

    def temperature_note(self) -> str | None:
        """One line on what the density metrics score when the kernel's T_eff is not 1."""
        temperature = self.sampling_temperature
        if temperature is None or math.isclose(temperature, 1.0, rel_tol=1e-3):
            return None
        return (f"kernel '{self.kernel_name}' samples exp(-E / {temperature:.4g}), not exp(-E): the *_tempered "
                f"density metrics score exp(-E / {temperature:.4g}), the others exp(-E)")

    def _density(self, samples):
        """Exact grid divergences of exp(-E) (and of exp(-E / T_eff) when the kernel's T_eff is
        not 1), the samples' histogram divergences, and ``kl_data_samples_floor``: the histogram
        KL of as many exact draws of the toy (the estimator's own bias at this sample size)."""
        from ebmgraph.eval.composition import WeightedEnergy
        from ebmgraph.eval.density2d import Grid, evaluate_2d

        toy, e = self.data.distribution, self.eval
        params, fine = attrs.asdict(toy), Grid(e.low, e.high, e.grid)
        exact = evaluate_2d(toy.name, params, fine, energy=self.energy)
        if self.temperature_note() is not None:
            tempered = evaluate_2d(toy.name, params, fine, energy=WeightedEnergy([self.energy],
                                                                                 [1 / self.sampling_temperature]))
            exact.update({f"{key}_tempered": value for key, value in tempered.items()})
        coarse = Grid(e.low, e.high, e.histogram_grid)
        exact_draws = toy.sample(len(samples), self.context().generator(f"{EVAL_SEED_LABEL}:density_floor"))
        floor = evaluate_2d(toy.name, params, coarse, samples=exact_draws)["kl_data_samples"]
        return {**exact, **evaluate_2d(toy.name, params, coarse, samples=samples), "kl_data_samples_floor": floor}

    def _fid(self, samples):
        from ebmgraph.eval.inception import inception_metrics

        reference = self.data.train_split()
        reference = reference if reference is not None else self.data.reference(len(samples))
        return inception_metrics(samples, reference, self.eval.inception_weights)

    def _inception_score(self, samples):
        from ebmgraph.eval.inception import inception_metrics

        return inception_metrics(samples, None, self.eval.inception_weights)

    def labelled_training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images and their labels, on the evaluation device."""
        labels = getattr(self.data, "train_labels", None)
        if labels is None:
            raise ValueError(f"metrics {', '.join(CONDITIONAL_METRICS)} need labelled training data; data "
                             f"'{self.data.type_name}' has no labels")
        return self.data.train_split().to(self.program.device), labels.to(self.program.device)

    def _conditional(self, samples):
        from ebmgraph.eval.conditional import class_latents, conditional_accuracy

        images, labels = self.labelled_training_set()
        set_latents = class_latents(self.representation, images, labels)
        return conditional_accuracy(self.spherical_energy, set_latents, self.conditional_samples, max(self.eval.n // 10, 1))

    def _composition(self, samples):
        from ebmgraph.eval.conditional import composition_precision

        images, labels = self.labelled_training_set()
        return composition_precision(self.spherical_energy, self.representation, images, labels, self.conditional_samples,
                                     max(self.eval.n // 10, 1))

    def _mcmc(self, samples):
        """Diagnostics of min(eval.n, MCMC_CHAINS) fresh chains of the kernel alone (no augmentation)."""
        from ebmgraph.eval.chain_diagnostics import traced_diagnostics

        if self.kernel_name is None:
            raise ValueError("metric 'mcmc' needs evaluation chains (eval.source: chains and a kernel)")
        kernel, model = self.program.nodes[self.kernel_name], self.energy
        energy, ctx = kernel.sampled_energy(model), self.context()
        init = self.initial_states(min(self.eval.n, MCMC_CHAINS), chunk="mcmc")
        direction = torch.randn(init[0].numel(), generator=ctx.generator(f"{EVAL_SEED_LABEL}:mcmc:projection"),
                                device=init.device, dtype=init.dtype)

        def run(observe):
            return kernel.chain(energy, init, attrs.evolve(kernel.config, steps=self.chain_steps()),
                                ctx.generator(_label(self.kernel_name, "mcmc")), (model,), observe=observe)[1]
        return traced_diagnostics(run, energy, direction, MCMC_MIN_STEPS)

    def _log_likelihood(self, samples):
        """Bidirectional AIS bounds on the test log-likelihood (``eval.ais_*``); on a 2-D toy also
        the grid's log Z over the evaluation box."""
        from ebmgraph.eval.ais import GaussianBase, log_likelihood_bounds, metropolis_transition

        e = self.eval
        test = self.data.test_split()
        test = (test if test is not None else self.data.reference(e.ais_chains))[: e.ais_chains]
        train = self.data.train_split()
        base = GaussianBase.fit(train if train is not None else self.data.reference(max(e.ais_chains, 1000)))
        out = log_likelihood_bounds(self.energy, test.to(self.program.device), base, e.ais_intermediate,
                                    metropolis_transition(e.ais_transition, e.ais_step_size), e.ais_burn_in,
                                    self.context().generator(f"{EVAL_SEED_LABEL}:ais"))
        if self.data.type_name in TOY_TYPES:
            from ebmgraph.eval.density2d import Grid, log_partition

            out["log_z_grid"] = log_partition(self.energy, Grid(e.low, e.high, e.grid))
        return out

    def _ood(self, samples):
        from ebmgraph.eval.ood import digits_ood_sets, energy_auroc

        generator = self.context().generator(f"{EVAL_SEED_LABEL}:ood")
        if len(self.data.sample_shape) == 1:
            inside = self.data.reference(self.eval.n)
            box = UniformConfig(self.eval.low, self.eval.high).draw(tuple(inside.shape), generator, torch.device("cpu"))
            sets = {"uniform_box": box}
        else:
            inside = self.data.test_split()
            inside = inside if inside is not None else self.data.reference(self.eval.n)
            sets = digits_ood_sets(inside, generator)
        aurocs = energy_auroc(self.score, inside, sets)
        return {f"auroc_{name}": value for name, value in aurocs.items()}

    def run(self, n: int | None = None) -> tuple[dict, torch.Tensor]:
        """(record for eval.json, the samples)."""
        start = time.perf_counter()
        samples = self.draw(n)
        record = {"source": self.eval.source, "n": len(samples), "energy": self.energy_name,
                  "kernel": self.kernel_name if self.eval.source == "chains" else None,
                  "metrics": self.metrics(samples)}
        if self.sampling_temperature is not None:
            record["effective_temperature"] = self.sampling_temperature
            if self.temperature_note() is not None:
                record["temperature_note"] = self.temperature_note()
        record["seconds"] = time.perf_counter() - start
        return record, samples

