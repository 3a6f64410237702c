"""The optional C kernels of the batched ensemble on a CPU (everything else is declared in pyproject.toml).

``optional=True``: without a C compiler the package still installs and runs the same kernels as torch operations.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tamrl_coupler.kernels._fused_cpu", ["tamrl_coupler/kernels/csrc/fused_cpu.c"],
                             depends=["tamrl_coupler/kernels/csrc/fused_cpu_kernels.h"],
                             extra_compile_args=["-O3", "-Wno-psabi"], optional=True)])
