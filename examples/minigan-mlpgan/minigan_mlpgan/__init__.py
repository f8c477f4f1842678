"""minigan-mlpgan: an example third-party minigan plugin.

minigan loads this module through the ``minigan`` entry point declared in pyproject.toml and
calls the hooks marked ``@hookimpl``. The model is registered lazily (a "module:attribute"
string), so ``minigan plugins`` lists it without importing the model code.
"""

import click

from minigan import hookimpl


@hookimpl
def register_models(register):
    register("mlpgan", "minigan_mlpgan.model:MLPGAN")


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
