"""The MCMC core as pure functions of tensors, parameters and a ``torch.Generator`` (no nodes, no
step context), composed like BlackJAX's: ``proposal`` (the Langevin move), ``metropolis`` (MALA's
correction), ``chains`` (unadjusted Langevin and MALA chains), ``freezing`` (parameters frozen
while sampling). The kernel nodes are thin adapters over ``chains``."""
