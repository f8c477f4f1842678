"""minigan-mlpgan: an example third-party minigan plugin.

minigan loads this module through the ``minigan`` entry point declared in pyproject.toml and
calls the hooks marked ``@hookimpl``. Everything is registered lazily ("module:attribute"
strings), so ``minigan plugins`` lists it without importing NumPy or the model code:

- models ``mlpgan`` (a BCE GAN) and ``wgan-gp`` (a critic with a gradient penalty, 5 critic
  batches per step);
- the dataset ``checkers`` (``--data checkers``);
- the processor ``posterize`` (``minigan process posterize IMAGE``);
- the command ``minigan mlpgan-info``.
"""

import click

from minigan import hookimpl


@hookimpl
def register_models(register):
    register("mlpgan", "minigan_mlpgan.model:MLPGAN")
    register("wgan-gp", "minigan_mlpgan.wgan:WGANGP")


@hookimpl
def register_datasets(register):
    register("checkers", "minigan_mlpgan.data:checkers")


@hookimpl
def register_processors(register):
    register("posterize", "minigan_mlpgan.process:Posterize")


@hookimpl
def register_commands(cli):
    @cli.command("mlpgan-info")
    def mlpgan_info():
        """Describe the mlpgan model's networks (added by the minigan-mlpgan plugin)."""
        from minigan_mlpgan.model import MLPGAN

        model = MLPGAN(image_shape=(1, 28, 28))
        for name, net in model.networks().items():
            count = sum(p.numel() for p in net.parameters())
            click.echo(f"{name}: {count:,} parameters")
