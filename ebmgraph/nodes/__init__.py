"""The public node contract: ``from ebmgraph import nodes``.

A node type is a class on one capability base (``DataSource``, ``NoiseSource``, ``Augmentation``,
``Kernel``, ``AmortizedDraw``, ``Bank``, ``ModelCall``, ``BatchOperation``, ``LossNode``; plus
``Stateful`` for state that is checkpointed) with an attrs ``Config``, typed ``inputs`` and
``outputs`` ports, ``infer`` (shapes) and ``__call__`` (tensors), registered with ``register``.
Kernels built on the pure MCMC core derive from ``EnergyKernel`` or ``ChainKernel``; model types
from ``ModelType``. See docs/writing-nodes.md.
"""

from ebmgraph.nodes.kernels import ChainKernel, EnergyKernel, HamiltonianKernel
from ebmgraph.nodes.langevin_parameters import LangevinParameters
from ebmgraph.nodes.mcmc.chains import ChainInfo, langevin_chain, mala_chain
from ebmgraph.nodes.mcmc.hamiltonian import HmcParameters, UnderdampedParameters, hmc_chain, underdamped_chain
from ebmgraph.nodes.node import (AmortizedDraw, Augmentation, Bank, BatchOperation, DataSource, Kernel, LossNode,
                                 ModelCall, Node, NoConfig, NoiseSource, SampleSource, Stateful, contract_problems)
from ebmgraph.nodes.ports import ENERGY, LABEL, LOGITS, LOSS, SAMPLE, Port, PortType, ShapeError, Value, model_ref
from ebmgraph.nodes.registry import DerivedModelType, ModelType, OptimizerType, register

__all__ = ["AmortizedDraw", "Augmentation", "Bank", "BatchOperation", "ChainInfo", "ChainKernel", "DataSource",
           "DerivedModelType", "ENERGY", "EnergyKernel", "HamiltonianKernel", "HmcParameters", "Kernel", "LABEL",
           "LOGITS", "LOSS", "LangevinParameters", "LossNode", "ModelCall", "ModelType", "Node", "NoConfig",
           "NoiseSource", "OptimizerType", "Port", "PortType", "SAMPLE", "SampleSource", "ShapeError", "Stateful",
           "UnderdampedParameters", "Value", "contract_problems", "hmc_chain", "langevin_chain", "mala_chain",
           "model_ref", "register", "underdamped_chain"]
