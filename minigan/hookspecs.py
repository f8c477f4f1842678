"""The hooks a minigan plugin can implement — all of them, in one place.

A plugin is a module (or any object) whose functions are marked with ``@hookimpl`` and whose
package declares an entry point in the ``minigan`` group::

    # pyproject.toml of a third-party package
    [project.entry-points.minigan]
    mygan = "minigan_mygan"

    # minigan_mygan/__init__.py
    from minigan import hookimpl

    @hookimpl
    def register_models(register):
        register("mygan", "minigan_mygan.model:MyGAN")

Every hook is a registration callback: the plugin calls ``register(name, thing)`` once per
thing it provides. ``thing`` is a class or factory, or a lazy ``"package.module:attribute"``
string that is imported only when the thing is used — so listing plugins stays fast and
importing a plugin never imports CuPy. minigan's built-in models and datasets are registered
exactly this way (see ``[project.entry-points.minigan]`` in minigan's own pyproject.toml).

Must import nothing but pluggy and the standard library: a plugin's hook module imports it
(``from minigan import hookimpl``) and must stay free of NumPy and the kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("minigan")
hookimpl = pluggy.HookimplMarker("minigan")

Register = Callable[[str, Any], None]


@hookspec
def register_models(register: Register) -> None:
    """Register trainable generators (``minigan train NAME``).

    ``register("dcgan", DCGAN)``: the class (or lazy string) must follow the model contract of
    :mod:`minigan.gan` (a ``Config`` dataclass, ``networks``, ``optimizers``, ``train_step``
    returning metrics of any names; optional ``progress_metrics``, ``plot_groups``,
    ``batches_per_step``); ``minigan.testing.check_model`` verifies it.
    """


@hookspec
def register_processors(register: Register) -> None:
    """Register image-to-image processors (``minigan process NAME``), e.g. DeepDream.

    ``register("deepdream", DeepDream)``: a class with a ``Config`` dataclass (its fields
    become options), built as ``cls(cls.Config(**options))``, whose ``process(image)`` maps
    an H×W×3 float32 RGB array in [0, 1] (grayscale files arrive as RGB) to a new float
    H'×W'×3 image in [0, 1] — checked, with an error naming the plugin — and whose
    ``metadata()`` goes into each output PNG. The full contract: :mod:`minigan.processing`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets (``--data NAME``).

    ``register("shapes", Shapes)``: a factory called with the keywords it accepts out of
    ``path=None, resolution=None, channels=None, seed=0, limit=None`` that returns a
    :class:`minigan.data.Dataset`. ``None`` means "not asked for" (``limit=None``: the
    dataset's own size, which a generated dataset chooses). :func:`minigan.data.open_dataset`
    applies ``resolution``, ``channels`` and ``limit`` to what the factory returns, so it
    may ignore them. ``minigan datasets`` shows the first line of the factory's docstring.
    """


@hookspec
def register_kernels(register: Register) -> None:
    """Register a kernel backend implementing the kernel contract.

    ``register("mygpu", "mypkg.kernels:")``: a module (or lazy ``"module:"`` string naming
    one) that defines every kernel of :class:`minigan.kernels.contract.KernelBackend`
    (``minigan.kernels.contract.KERNELS`` lists their names) and ``handles(array) -> bool``,
    true for the arrays it runs on. The backend is checked against the contract when it is
    installed; one lacking a kernel is skipped with a message naming what is missing.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``minigan`` command line: ``cli`` is its ``click.Group``.

    >>> import click
    >>> @hookimpl
    ... def register_commands(cli):
    ...     @cli.command()
    ...     def hello():
    ...         click.echo("hello")
    """
