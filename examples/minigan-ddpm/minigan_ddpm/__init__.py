"""minigan-ddpm: an example third-party minigan plugin — a small denoising diffusion model.

minigan loads this module through the ``minigan`` entry point declared in pyproject.toml. The
model is registered lazily (a "module:attribute" string): ``minigan plugins`` lists it without
importing NumPy or the model code.
"""

from minigan import hookimpl


@hookimpl
def register_models(register):
    register("ddpm", "minigan_ddpm.model:DDPM")
