"""How the model is evaluated fast: member-batched kernels (torch, and C for CPUs: csrc/), features into
preallocated buffers, per-chunk workspaces, evaluation plans bound once, CUDA graphs. What is evaluated -- the
networks, the ensemble, its state -- is :mod:`tamrl_coupler.model`; nothing here imports it."""
