"""``Parameter``, ``Module`` and the two containers ``Sequential`` and ``ModuleList``.

A :class:`Module` owns three ordered registries, filled by plain attribute assignment:

* ``_parameters`` -- :class:`Parameter` objects (``self.weight = Parameter(...)``),
* ``_buffers``    -- state that is saved but not trained (``self.register_buffer(...)``),
* ``_modules``    -- child modules (``self.fc = Linear(...)``).

Everything else (``parameters()``, ``state_dict()``, ``to()``, ``train()`` ...) is a walk over
these registries. They are dicts, so the order is always the registration order and
``state_dict`` keys are exactly the ones PyTorch produces for the same architecture
(``0.weight``, ``fc.bias``, ``bn.running_mean``, ``bn.num_batches_tracked`` ...).

Must not import ``functional``'s ops, ``optim``, the training modules, the kernels or any
plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np

from minigan.backend import is_cupy_array, to_device
from minigan.tensor import Tensor

__all__ = ["Parameter", "Module", "Sequential", "ModuleList"]


class Parameter(Tensor):
    """A Tensor that a :class:`Module` registers as trainable (``requires_grad=True``).

    >>> import numpy as np
    >>> p = Parameter(np.zeros(3, dtype=np.float32))
    >>> p.requires_grad, p.shape
    (True, (3,))
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns (the same fields as PyTorch)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _as_array(value: Any) -> Any:
    """A checkpoint value as a raw array: minigan Tensors give their ``.data`` (NumPy or
    CuPy), anything else goes through ``numpy.asarray`` (NumPy arrays, lists, torch tensors)."""
    if isinstance(value, Tensor):
        return value.data
    if is_cupy_array(value):
        return value
    return np.asarray(value)


def _join(prefix: str, name: str) -> str:
    """``"fc" + "weight" -> "fc.weight"``; an empty prefix adds no dot."""
    return f"{prefix}.{name}" if prefix else name


def _add_indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (for nested reprs)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


_M = TypeVar("_M", bound="Module")

class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and child modules
    as attributes, and implement :meth:`forward`. Calling the module calls ``forward``.

    >>> import numpy as np
    >>> class Scale(Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.factor = Parameter(np.ones(1, dtype=np.float32))
    ...     def forward(self, x):
    ...         return x * self.factor
    >>> [name for name, _ in Scale().named_parameters()]
    ['factor']
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ bypasses our own __setattr__, which needs these dicts to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def _check_initialised(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() was called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_initialised(name)
            self._forget(name)
            self.__dict__["_parameters"][name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter '{name}' of "
                    f"{type(self).__name__} (a Parameter or None is expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._check_initialised(name)
            self._forget(name)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module '{name}' of "
                    f"{type(self).__name__} (a Module or None is expected)"
                )
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            self._buffers[name] = None if value is None else self._as_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Remove ``name`` from every registry (before registering it somewhere)."""
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for registered entries.
        registries = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in registries and name in registries[registry]:
                return registries[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    @staticmethod
    def _as_buffer(name: str, value: Any) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if hasattr(value, "shape") and hasattr(value, "dtype"):  # NumPy or CuPy array
            return Tensor(value)
        raise TypeError(f"buffer '{name}' must be a Tensor, an array or None, got {type(value)}")

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Register state that is not trained but saved (e.g. BatchNorm's running mean).

        ``tensor`` may be a Tensor, a raw NumPy/CuPy array (wrapped in a Tensor) or None.
        Non-persistent buffers are left out of :meth:`state_dict`.
        """
        self._check_initialised(name)
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if name in self.__dict__ or name in self._parameters or name in self._modules:
            raise KeyError(f"attribute '{name}' already exists in {type(self).__name__}")
        self._buffers[name] = None if tensor is None else self._as_buffer(name, tensor)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or a None placeholder, e.g. an absent bias) as ``name``."""
        self._check_initialised(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter '{name}'")
        self._forget(name)
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name`` (what ``self.name = module`` does)."""
        self._check_initialised(name)
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"module name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        self._forget(name)
        self._modules[name] = module

    # ------------------------------------------------------------------ traversal
    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True, _memo: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, module)`` for this module and all descendants, pre-order."""
        memo = set() if _memo is None else _memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(_join(prefix, name), remove_duplicate, memo)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(
        self, registry: str, prefix: str, recurse: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()  # a shared (tied) tensor is reported once
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_prefix, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None or id(member) in seen:
                    continue
                seen.add(id(member))
                yield _join(module_prefix, name), member

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` in registration order, each parameter once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (optionally only those with requires_grad)."""
        return sum(
            int(np.prod(p.shape))
            for p in self.parameters()
            if p.requires_grad or not trainable_only
        )

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and on self; returns self.

        The usual way to run a custom initialisation, e.g. DCGAN's ``weights_init``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state dict
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> dict[str, Tensor]:
        """An ordered dict of every parameter and persistent buffer, under PyTorch's names.

        Values share memory with the module (as in PyTorch); they are detached Tensors
        unless ``keep_vars`` is true, in which case they are the module's own objects.
        """
        result: dict[str, Tensor] = {}
        for module_prefix, module in self.named_modules(prefix, remove_duplicate=False):
            for name, param in module._parameters.items():
                if param is not None:
                    key = _join(module_prefix, name)
                    result[key] = param if keep_vars else param.detach()
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent_buffers:
                    key = _join(module_prefix, name)
                    result[key] = buffer if keep_vars else buffer.detach()
        return result

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> _IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and buffers, in place.

        Values may be minigan Tensors, NumPy/CuPy arrays or anything ``numpy.asarray`` accepts
        (torch tensors included). Each target keeps its own dtype and device. Nothing is
        modified unless every key can be loaded. With ``strict`` (the default), missing and
        unexpected keys are errors; shape mismatches always are.
        """
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        mismatched = []
        to_copy = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = _as_array(state_dict[key])
            if tuple(value.shape) != tuple(target.shape):
                mismatched.append(
                    f"{key}: checkpoint has shape {tuple(value.shape)}, "
                    f"the model has shape {tuple(target.shape)}"
                )
            else:
                to_copy.append((target, value))

        problems = []
        if strict and missing:
            problems.append("Missing key(s): " + ", ".join(missing))
        if strict and unexpected:
            problems.append("Unexpected key(s): " + ", ".join(unexpected))
        if mismatched:
            problems.append("Size mismatch for " + "; ".join(mismatched))
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(problems)
            )

        for target, value in to_copy:
            # In place: the target keeps its dtype and device (assignment casts).
            target.data[...] = to_device(value, target.device)
            target.bump_version()
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ modes, grads, devices
    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode (``True``) or evaluation mode (``False``) recursively."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self: _M) -> _M:
        """Evaluation mode: BatchNorm uses running statistics, Dropout is the identity."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter (e.g. freeze a discriminator)."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero, with ``set_to_none=False``) every parameter's gradient."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.zero_()

    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``.

        Works in place (the Parameter objects stay the same, so an optimizer built earlier
        keeps working) and returns self. Integer buffers such as ``num_batches_tracked``
        keep their dtype, as in PyTorch.
        """
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind not in "fc":
                raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        for tensor in [*self.parameters(), *self.buffers()]:
            for t in (tensor, tensor.grad):
                if t is None:
                    continue
                array = _converted(t.data, device, dtype)
                if array is not t.data:  # unchanged: no new version (a graph stays usable)
                    t.data = array
        return self

    def cpu(self) -> Module:
        return self.to(device="cpu")

    def cuda(self) -> Module:
        return self.to(device="cuda")

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        extra_lines = self.extra_repr().split("\n") if self.extra_repr() else []
        child_lines = [
            f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"

    def __dir__(self) -> list[str]:
        return sorted(
            set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules)
        )


def _converted(array: Any, device: str | None, dtype: np.dtype | None) -> Any:
    """``array`` cast to a floating ``dtype`` (integer/bool arrays are left alone) and moved."""
    if dtype is not None and array.dtype.kind in "fc" and array.dtype != dtype:
        array = array.astype(dtype)
    if device is not None:
        array = to_device(array, device)
    return array


class Sequential(Module):
    """A chain of modules, called one after the other. Children are named ``0``, ``1``, ...

    A single ``dict`` argument names the children instead.

    >>> from minigan import nn
    >>> model = Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> len(model), type(model[-1]).__name__
    (3, 'Linear')
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, item in enumerate(modules):
                self.add_module(str(index), cast(Module, item))

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return type(self)(dict(items[index]))
        return items[_checked_index(index, len(items))][1]

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain ``list`` would hide them).

    >>> from minigan import nn
    >>> blocks = ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(blocks), len(list(blocks.parameters()))
    (3, 6)
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_checked_index(index, len(modules))]

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(str(_checked_index(index, len(self))), module)

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        del modules[index]
        self._modules.clear()
        self.extend(modules)  # renumber 0..n-1 as PyTorch does

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        self.extend(modules)


def _checked_index(index: int, length: int) -> int:
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for a container of length {length}")
    return index % length
