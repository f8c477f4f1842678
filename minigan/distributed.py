"""Data-parallel training over MPI (``mpi4py``), with NCCL (``cupy.cuda.nccl``) between GPUs.

``mpirun -n N minigan train MODEL ...`` runs N copies of the training loop, one per process
(ChainerMN / PyTorch DDP / Horovod style). This module is what they share:

- :func:`init_world` finds the job (a launcher's world size above 1 means distributed;
  ``--distributed`` insists, ``--no-distributed`` opts out) and returns a :class:`World`:
  rank, size, local rank and the collectives. ``mpi4py`` (and CuPy) are imported only here,
  only when a job is really distributed.
- :class:`GradReducer` averages gradients with a **bucketed all-reduce** (float32 buffers of
  about 25 MB, PyTorch DDP's default), each bucket started as soon as a backward has produced
  all its gradients (a post-accumulate-grad hook on every parameter), so communication runs
  while the backward goes on; the optimizer's ``step()`` waits for the buckets first. On the
  CPU the buckets go through MPI on a communication thread; on GPUs through NCCL on a CUDA
  stream of their own (the NCCL communicator bootstrapped through MPI).
- :class:`DataParallel` wraps a model for the training loop: parameters and buffers broadcast
  from rank 0, a reducer per optimizer, floating buffers (BatchNorm statistics, StyleGAN's
  ``w_avg``) averaged after each step, random draws made as each process's slice of the
  global batch's (:func:`minigan.random.batch_shard`), SyncBatchNorm with ``sync_bn``, the
  metrics averaged over processes, and agreement on when to stop.
- :class:`DataParallelTrainer` is the :class:`minigan.trainer.Trainer` that
  :func:`minigan.train.train` runs in such a job: sharded data, rank 0 alone writing the run
  folder, a stop request (SIGINT, or SIGUSR1 which ``mpirun`` forwards) honoured by every rank
  at the same step with one checkpoint, and an exception on any rank ending the whole job at
  once with that rank's error (``MPI_Abort``) instead of leaving the others waiting.

**Deterministic scaling.** The loss is a mean over the per-process batch ``b``; averaging the
gradients over N processes gives the gradient of the mean over the global batch ``N * b``.
With the same data (each rank's slice of the global batch), the same random numbers (each
rank's slice of the global draw) and batch statistics over the global batch (``sync_bn``), N
processes with batch ``b`` follow one process with batch ``N * b`` to float32 round-off.
Without ``sync_bn`` batch norm uses per-process statistics, as DDP does; minibatch-standard-
deviation groups (StyleGAN) form within each process, as in StyleGAN2's multi-GPU training.

>>> world = init_world(False)           # a single process: every collective is the identity
>>> world.size, world.rank, float(world.allreduce(np.array([2.0]))[0])
(1, 0, 2.0)
"""

from __future__ import annotations

import abc
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minigan import backend, nn
from minigan import functional as F
from minigan import random as _random
from minigan.tensor import Function, Tensor
from minigan.trainer import Trainer, TrainingDiverged

__all__ = [
    "BUCKET_BYTES",
    "DataParallel",
    "DataParallelTrainer",
    "DistributedError",
    "GradReducer",
    "SyncBatchNorm1d",
    "SyncBatchNorm2d",
    "World",
    "convert_sync_batchnorm",
    "current_world",
    "data_parallel_trainer",
    "init_world",
    "launcher_world_size",
    "sync_batch_norm",
]

BUCKET_BYTES = 25 * 2**20  # PyTorch DDP's bucket_cap_mb=25
_world: MPIWorld | None = None  # set up once per process by init_world
# environment variables through which launchers announce the world size
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


class DistributedError(RuntimeError):
    """Distributed training was asked for but cannot run (no mpi4py, no launcher ...)."""


def launcher_world_size(environ: dict[str, str] | None = None) -> int:
    """The number of processes an MPI launcher (``mpirun``, ``mpiexec``, Slurm's ``srun``)
    started, read from its environment variables without importing mpi4py; 1 if none.

    >>> launcher_world_size({"OMPI_COMM_WORLD_SIZE": "4"}), launcher_world_size({})
    (4, 1)
    >>> launcher_world_size({"PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "8"})
    8
    """
    env = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        if env.get(name, "").isdigit():
            return int(env[name])
    if "PMIX_RANK" in env and env.get("SLURM_STEP_NUM_TASKS", "").isdigit():
        return int(env["SLURM_STEP_NUM_TASKS"])  # srun --mpi=pmix
    return 1


# =========================================================================== the world
class World:
    """One process's view of a job: ``rank`` of ``size``, its ``local_rank`` on its node, and
    the collectives (the identity for a single process). Arrays may be NumPy or CuPy."""

    rank, size, local_rank = 0, 1, 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def allreduce(self, x: Any) -> Any:
        """The element-wise sum of ``x`` over all processes (a new array)."""
        return x.copy()

    def broadcast(self, x: Any, root: int = 0) -> None:
        """Overwrite ``x`` (in place) with ``root``'s."""

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process."""
        return bool(flag)

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def gradient_channel(self, device: str) -> _Channel:
        """The asynchronous all-reduce that gradient buckets go through."""
        return _LocalChannel()

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` (marked with the rank) and end the whole job."""
        print(message, file=sys.stderr, flush=True)
        os._exit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class MPIWorld(World):
    """A world over an mpi4py communicator; GPU arrays go through NCCL when CuPy has it."""

    def __init__(self, comm: Any, device: str = "cpu") -> None:
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        self._grad_comm = comm.Dup()  # the gradient thread's own: no interleaving with ours
        self._channel: _Channel | None = None
        self.nccl: _Nccl | None = None
        if backend.parse_device(device) == "cuda":
            self.nccl = _Nccl(self)

    def allreduce(self, x: Any) -> Any:
        if backend.is_cupy_array(x):
            if self.nccl is not None:
                return self.nccl.allreduce(x)
            cp = backend.cupy()
            return cp.asarray(self.allreduce(cp.asnumpy(x)))
        out = np.ascontiguousarray(x).copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return out

    def broadcast(self, x: Any, root: int = 0) -> None:
        if backend.is_cupy_array(x):
            if self.nccl is not None:
                self.nccl.broadcast(x, root)
            else:
                host = backend.cupy().asnumpy(x)
                self.broadcast(host, root)
                x[...] = backend.cupy().asarray(host)
            return
        buf = np.ascontiguousarray(x)
        self.comm.Bcast(buf, root=root)
        if buf is not x:
            x[...] = buf

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(int(bool(flag)), op=self.MPI.MAX))

    def barrier(self) -> None:
        self.comm.Barrier()

    def gradient_channel(self, device: str) -> _Channel:
        if self._channel is None:
            if self.nccl is not None:
                self._channel = self.nccl
            else:
                self._channel = _MPIThreadChannel(self._grad_comm, self.MPI)
        return self._channel

    def abort(self, message: str, code: int = 1) -> None:
        print(message, file=sys.stderr, flush=True)
        self.comm.Abort(code)


def init_world(distributed: bool | None = None, device: str = "cpu") -> World:
    """The world this process runs in.

    ``distributed=None`` (the default of ``minigan train``) is distributed when an MPI
    launcher started more than one process; ``True`` insists (a clear error without mpi4py
    or a launcher); ``False`` is a single process whatever the launcher says.
    """
    global _world
    size = launcher_world_size()
    if distributed is False or (distributed is None and size <= 1):
        return World()
    if _world is not None:
        return _world
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"distributed training needs mpi4py ({e}): pip install 'minigan[distributed]'"
        ) from None
    if MPI.COMM_WORLD.Get_size() <= 1:
        if distributed:
            raise DistributedError(
                "--distributed: this process is alone (world size 1); start it with an MPI "
                "launcher, e.g. mpirun -n 2 minigan train ..., or srun -n 2 minigan train ..."
            )
        return World()
    _world = MPIWorld(MPI.COMM_WORLD, device)
    install_fault_handler(_world)
    return _world


def current_world() -> World:
    """The world :func:`init_world` set up in this process (a lone :class:`World` if none):
    no collective call, so safe on a rank that is failing alone."""
    return _world if _world is not None else World()


# =========================================================================== channels
@dataclass
class _Pending:
    """An all-reduce in flight: its buffer and how to wait for it."""

    buffer: Any
    done: threading.Event | None = None
    event: Any = None  # a CUDA event (NCCL)
    error: BaseException | None = None
    seconds: float = 0.0


class _Channel(abc.ABC):
    """An asynchronous sum all-reduce: ``start(buffer)`` then ``wait(pending)``."""

    busy_seconds = 0.0  # time spent communicating (for the overlap figure)

    @abc.abstractmethod
    def start(self, buffer: Any) -> _Pending:
        """Start summing ``buffer`` over the world (in place)."""

    @abc.abstractmethod
    def wait(self, pending: _Pending) -> Any:
        """The summed buffer, once its all-reduce is done."""


class _LocalChannel(_Channel):
    """A single process: the sum over one process is the buffer itself."""

    def start(self, buffer: Any) -> _Pending:
        return _Pending(buffer)

    def wait(self, pending: _Pending) -> Any:
        return pending.buffer


class _MPIThreadChannel(_Channel):
    """MPI all-reduces run one after another on a communication thread (MPI releases the
    GIL while it waits), on a communicator of their own: the backward keeps computing
    meanwhile. Open MPI progresses non-blocking collectives only inside MPI calls, so a
    thread is what gives real overlap without an MPI progress thread."""

    def __init__(self, comm: Any, MPI: Any) -> None:
        self.comm, self.MPI = comm, MPI
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="minigan-allreduce", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            t0 = time.perf_counter()
            try:
                self.comm.Allreduce(self.MPI.IN_PLACE, item.buffer, op=self.MPI.SUM)
            except BaseException as e:  # handed to the waiting thread
                item.error = e
            item.seconds = time.perf_counter() - t0
            self.busy_seconds += item.seconds
            assert item.done is not None
            item.done.set()

    def start(self, buffer: Any) -> _Pending:
        pending = _Pending(np.ascontiguousarray(buffer), done=threading.Event())
        self._queue.put(pending)
        return pending

    def wait(self, pending: _Pending) -> Any:
        assert pending.done is not None
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.buffer


_NCCL_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "int64": "NCCL_INT64"}


class _Nccl(_Channel):
    """NCCL between the GPUs, one per process (chosen by local rank). Rank 0 makes the NCCL
    id and MPI broadcasts it; collectives are enqueued on CUDA streams, so they are ordered
    with the computation without the host waiting: gradient buckets on a stream of their own
    (after an event marking that their gradients are computed), other collectives on the
    current stream."""

    def __init__(self, world: MPIWorld) -> None:
        cp = backend.cupy()
        from cupy.cuda import nccl

        count = cp.cuda.runtime.getDeviceCount()
        if count < 1:
            raise DistributedError(f"rank {world.rank}: --device cuda, but no GPU is visible")
        cp.cuda.Device(world.local_rank % count).use()
        uid = nccl.get_unique_id() if world.rank == 0 else None
        uid = world.comm.bcast(uid, root=0)
        self.cp, self.nccl = cp, nccl
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)
        self.stream = cp.cuda.Stream(non_blocking=True)

    def _type(self, x: Any) -> int:
        name = _NCCL_TYPES.get(str(x.dtype))
        if name is None:
            raise TypeError(f"NCCL all-reduce of {x.dtype} arrays is not supported here")
        return int(getattr(self.nccl, name))

    def allreduce(self, x: Any) -> Any:
        out = self.cp.ascontiguousarray(x).copy()
        stream = self.cp.cuda.get_current_stream().ptr
        self.comm.allReduce(
            out.data.ptr, out.data.ptr, out.size, self._type(out), self.nccl.NCCL_SUM, stream
        )
        return out

    def broadcast(self, x: Any, root: int = 0) -> None:
        if not x.flags.c_contiguous:
            raise ValueError("NCCL broadcast needs a contiguous array")
        stream = self.cp.cuda.get_current_stream().ptr
        self.comm.bcast(x.data.ptr, x.size, self._type(x), root, stream)

    def start(self, buffer: Any) -> _Pending:
        ready = self.cp.cuda.Event()
        ready.record(self.cp.cuda.get_current_stream())
        self.stream.wait_event(ready)  # the gradients are computed
        self.comm.allReduce(
            buffer.data.ptr,
            buffer.data.ptr,
            buffer.size,
            self._type(buffer),
            self.nccl.NCCL_SUM,
            self.stream.ptr,
        )
        done = self.cp.cuda.Event()
        done.record(self.stream)
        return _Pending(buffer, event=done)

    def wait(self, pending: _Pending) -> Any:
        self.cp.cuda.get_current_stream().wait_event(pending.event)  # no host wait
        return pending.buffer


# =========================================================================== gradients
@dataclass
class _Bucket:
    """Parameters whose gradients travel together in one flat float32 buffer."""

    params: list[Tensor]
    ready: set[int] = field(default_factory=set)
    pending: _Pending | None = None
    sent: Any = None  # what was sent (to add a later backward's share as a delta)
    dirty: bool = False  # a gradient grew after the bucket was sent
    launched_at: float = 0.0

    @property
    def nbytes(self) -> int:
        return 4 * sum(p.numel() for p in self.params)


def _buckets(params: Sequence[Tensor], bucket_bytes: int) -> list[_Bucket]:
    """Parameters in reverse order (the backward produces the last layers' gradients
    first), cut into buckets of at most ``bucket_bytes`` (a bigger parameter alone)."""
    out: list[_Bucket] = []
    for p in reversed(params):
        if not out or out[-1].nbytes + 4 * p.numel() > bucket_bytes:
            out.append(_Bucket([]))
        out[-1].params.append(p)
    return out


@dataclass
class ReducerStats:
    """What a :class:`GradReducer` did: all-reduces, bytes, seconds the channel spent
    communicating, seconds the optimizer's step waited for it (the exposed part), and the
    window: seconds between each bucket's start and the step that needed it (how much
    computation there was to hide communication behind, whatever the machine's load)."""

    allreduces: int = 0
    bytes: int = 0
    comm_seconds: float = 0.0
    wait_seconds: float = 0.0
    window_seconds: float = 0.0

    @property
    def overlap(self) -> float:
        """The fraction of the communication hidden behind computation."""
        if self.comm_seconds <= 0:
            return 0.0
        return max(0.0, 1.0 - self.wait_seconds / self.comm_seconds)


class GradReducer:
    """Averages the gradients of ``params`` over the world with bucketed all-reduces started
    during the backward.

    Each parameter gets a post-accumulate-grad hook; when a backward has produced every
    gradient of a bucket, the bucket is flattened to float32 and its all-reduce starts.
    :meth:`synchronize` (run by the attached optimizer's ``step()``) starts the buckets that
    did not fill (parameters that got no gradient travel as zeros and keep ``grad=None``),
    waits for all, and writes back ``sum / size``. A gradient that grows after its bucket was
    sent (a second backward before the step) is reduced again as a delta: the all-reduce is
    linear. Every process must run the same backward passes, so the collectives match.
    """

    def __init__(
        self,
        world: World,
        params: Iterable[Tensor],
        bucket_bytes: int = BUCKET_BYTES,
        device: str = "cpu",
    ) -> None:
        self.world, self.params = world, list(params)
        self.channel = world.gradient_channel(device)
        self.buckets = _buckets(self.params, bucket_bytes)
        self._where = {id(p): b for b in self.buckets for p in b.params}
        self._launched: list[_Bucket] = []
        self.stats = ReducerStats()
        self._hooks = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]

    def _on_grad(self, p: Tensor) -> None:
        bucket = self._where[id(p)]
        if bucket.pending is not None:
            bucket.dirty = True
            return
        bucket.ready.add(id(p))
        if len(bucket.ready) == len(bucket.params):
            self._launch(bucket)

    def _flat(self, bucket: _Bucket) -> Any:
        xp = backend.get_array_module(bucket.params[0].data)
        parts = [
            (p.grad.data if p.grad is not None else xp.zeros(p.shape, np.float32))
            .astype(np.float32, copy=False)
            .reshape(-1)
            for p in bucket.params
        ]
        return xp.concatenate(parts)

    def _launch(self, bucket: _Bucket) -> None:
        bucket.sent = self._flat(bucket)
        bucket.launched_at = time.perf_counter()
        bucket.pending = self.channel.start(bucket.sent.copy())
        self._launched.append(bucket)
        self.stats.allreduces += 1
        self.stats.bytes += bucket.nbytes

    def synchronize(self) -> None:
        """Finish every bucket's all-reduce and set each gradient to the world's average."""
        for bucket in self.buckets:
            if bucket.pending is None and (
                bucket.ready or any(p.grad is not None for p in bucket.params)
            ):
                self._launch(bucket)
        t0 = time.perf_counter()
        for bucket in list(self._launched):
            assert bucket.pending is not None
            self.stats.window_seconds += t0 - bucket.launched_at
            total = self.channel.wait(bucket.pending)
            self.stats.comm_seconds += bucket.pending.seconds
            if bucket.dirty:  # a later backward added to sent gradients: reduce the rest
                extra = self.channel.start(self._flat(bucket) - bucket.sent)
                total = total + self.channel.wait(extra)
                self.stats.comm_seconds += extra.seconds
            self._write_back(bucket, total)
        self.stats.wait_seconds += time.perf_counter() - t0
        self._reset()

    def _write_back(self, bucket: _Bucket, total: Any) -> None:
        scale = np.float32(1.0 / self.world.size)
        offset = 0
        for p in bucket.params:
            n = p.numel()
            if p.grad is not None:
                avg = (total[offset : offset + n] * scale).reshape(p.shape).astype(p.dtype)
                p.grad = Tensor(avg)
            offset += n

    def discard(self) -> None:
        """Drop the gradients in flight (``zero_grad()`` before a step): their all-reduces
        still complete, so every process stays in step."""
        for bucket in self._launched:
            assert bucket.pending is not None
            self.channel.wait(bucket.pending)
        self._reset()

    def _reset(self) -> None:
        for bucket in self.buckets:
            bucket.ready.clear()
            bucket.pending, bucket.sent, bucket.dirty = None, None, False
        self._launched.clear()

    def attach(self, optimizer: Any) -> GradReducer:
        """Make ``optimizer.step()`` synchronize first and ``optimizer.zero_grad()`` discard
        gradients in flight: a model's ``train_step`` needs no change."""
        step, zero_grad = optimizer.step, optimizer.zero_grad

        def synced_step(*args: Any, **kwargs: Any) -> Any:
            self.synchronize()
            return step(*args, **kwargs)

        def synced_zero_grad(*args: Any, **kwargs: Any) -> Any:
            if self._launched:
                self.discard()
            return zero_grad(*args, **kwargs)

        optimizer.step, optimizer.zero_grad = synced_step, synced_zero_grad
        return self

    def remove(self) -> None:
        """Unregister the hooks."""
        for handle in self._hooks:
            handle.remove()


# =========================================================================== SyncBatchNorm
_sync_world: World | None = None  # the world SyncBatchNorm layers reduce over


class AllReduce(Function):
    """``y = sum over processes of x``; its backward is the same sum of ``gy`` (a sum
    all-reduce is its own adjoint), so it can sit anywhere in a graph, double backward
    included."""

    saved_inputs: tuple[int, ...] = ()  # the backward reads no input's values

    def __init__(self, world: World) -> None:
        self.world = world

    def forward(self, x):
        return self.world.allreduce(x)

    def backward(self, gy):
        return AllReduce(self.world)(gy)


def sync_batch_norm(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
    world: World,
) -> Tensor:
    """Training-mode batch norm with statistics over the *global* batch (every process's
    rows), PyTorch's SyncBatchNorm semantics: the mean and the (biased) variance come from two
    sum all-reduces, whose adjoints make the backward exact, and the running statistics take
    the global mean and unbiased variance."""
    c = x.shape[1]
    dims = (0, *range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    total = float(world.allreduce(np.array([x.numel() // c], np.float64))[0])
    if total < 2:
        raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel, got {total}")
    mean = AllReduce(world)(F.sum(x, dims, keepdim=True)) * (1.0 / total)
    xc = x - mean
    var = AllReduce(world)(F.sum(xc * xc, dims, keepdim=True)) * (1.0 / total)
    y = xc * (var + eps) ** -0.5
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    if running_mean is not None and running_var is not None:
        m = mean.data.reshape(-1).astype(running_mean.dtype)
        v = (var.data.reshape(-1) * (total / (total - 1))).astype(running_var.dtype)
        running_mean *= 1 - momentum
        running_mean += momentum * m
        running_var *= 1 - momentum
        running_var += momentum * v
    return y


class _SyncBatchNorm:
    """Batch norm whose training-mode statistics are those of the global batch while a
    :class:`DataParallel` with ``sync_bn`` is active; otherwise the ordinary layer."""

    def forward(self, x: Tensor) -> Tensor:
        world = _sync_world
        if world is None or world.size == 1 or not self.training:  # type: ignore[attr-defined]
            return super().forward(x)  # type: ignore[misc]
        bn: Any = self
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.track_running_stats:
            bn.num_batches_tracked.data += 1
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked.item())
        stats = (bn.running_mean.data, bn.running_var.data) if bn.track_running_stats else None
        running_mean, running_var = stats or (None, None)
        return sync_batch_norm(
            x, running_mean, running_var, bn.weight, bn.bias, momentum, bn.eps, world
        )


class SyncBatchNorm1d(_SyncBatchNorm, nn.BatchNorm1d):
    """:class:`minigan.nn.BatchNorm1d` with global-batch statistics under ``--sync-bn``."""


class SyncBatchNorm2d(_SyncBatchNorm, nn.BatchNorm2d):
    """:class:`minigan.nn.BatchNorm2d` with global-batch statistics under ``--sync-bn``."""


_SYNC_CLASSES: dict[type, type] = {
    nn.BatchNorm1d: SyncBatchNorm1d,
    nn.BatchNorm2d: SyncBatchNorm2d,
}


def convert_sync_batchnorm(module: nn.Module) -> int:
    """Turn every ``BatchNorm1d``/``BatchNorm2d`` inside ``module`` into its synchronized
    variant in place (same parameters, buffers and state-dict keys; PyTorch's
    ``SyncBatchNorm.convert_sync_batchnorm``). Returns how many layers changed.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    >>> convert_sync_batchnorm(net), type(net[1]).__name__
    (1, 'SyncBatchNorm1d')
    """
    changed = 0
    for m in module.modules():
        target = _SYNC_CLASSES.get(type(m))
        if target is not None:
            m.__class__ = target
            changed += 1
    return changed


# =========================================================================== DataParallel
class DataParallel:
    """A model (the :class:`minigan.train.GAN` contract: ``networks()``, ``optimizers()``)
    made data-parallel over ``world``; what the training loop calls.

    - at construction: ``sync_bn`` converts the batch norms, a :class:`GradReducer` is
      attached to every optimizer, parameters and buffers are broadcast from rank 0;
    - :meth:`step` wraps one ``train_step``: random draws as this rank's slice of the global
      batch's, then floating buffers averaged over the processes (BatchNorm running
      statistics, StyleGAN's ``w_avg``: each is a running mean of batch means, so their
      average is the global batch's, and identical buffers stay identical);
    - :meth:`reduce_metrics` averages the metrics over the processes (a NaN anywhere is a NaN
      everywhere: all ranks stop at the same step); :meth:`agree` ORs a flag (Ctrl-C).
    """

    def __init__(
        self,
        world: World,
        model: Any,
        *,
        sync_bn: bool = False,
        bucket_bytes: int = BUCKET_BYTES,
        device: str = "cpu",
    ) -> None:
        global _sync_world
        self.world, self.model, self.sync_bn = world, model, sync_bn
        if sync_bn:
            for net in model.networks().values():
                convert_sync_batchnorm(net)
            _sync_world = world
        self._originals: list[tuple[Any, Any, Any]] = []
        self.reducers: dict[str, GradReducer] = {}
        for name, opt in model.optimizers().items():
            params = [p for group in opt.param_groups for p in group["params"]]
            self._originals.append((opt, opt.step, opt.zero_grad))
            self.reducers[name] = GradReducer(world, params, bucket_bytes, device).attach(opt)
        self.broadcast_state()

    def _tensors(self, kind: str) -> list[Tensor]:
        seen: set[int] = set()
        out = []
        for net in self.model.networks().values():
            for t in getattr(net, kind)():
                if id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
        return out

    def broadcast_state(self, root: int = 0) -> None:
        """Give every process rank ``root``'s parameters and buffers."""
        for t in self._tensors("parameters") + self._tensors("buffers"):
            self.world.broadcast(t.data, root)

    def average_buffers(self) -> None:
        """Average the floating-point buffers of every network over the processes."""
        buffers = [b for b in self._tensors("buffers") if b.dtype.kind == "f"]
        if not buffers or self.world.size == 1:
            return
        xp = backend.get_array_module(buffers[0].data)
        flat = xp.concatenate([b.data.astype(np.float64).reshape(-1) for b in buffers])
        flat = self.world.allreduce(flat) / self.world.size
        offset = 0
        for b in buffers:
            n = b.numel()
            b.data[...] = flat[offset : offset + n].reshape(b.shape).astype(b.dtype)
            offset += n

    @contextmanager
    def step(self, batch_size: int) -> Iterator[None]:
        """Around one ``train_step`` on this process's ``batch_size`` images."""
        with _random.batch_shard(self.world.rank, self.world.size, batch_size):
            yield
        self.average_buffers()

    def reduce_metrics(self, steps: Sequence[dict[str, float]]) -> list[dict[str, float]]:
        """Each step's metrics averaged over the processes (one all-reduce for them all)."""
        if self.world.size == 1 or not steps:
            return [dict(m) for m in steps]
        keys = [sorted(m) for m in steps]
        flat = np.array([m[k] for m, ks in zip(steps, keys) for k in ks], np.float64)
        flat = self.world.allreduce(flat) / self.world.size
        out, i = [], 0
        for ks in keys:
            out.append({k: float(flat[i + j]) for j, k in enumerate(ks)})
            i += len(ks)
        return [{k: o[k] for k in m} for o, m in zip(out, steps)]  # the original key order

    def agree(self, flag: bool) -> bool:
        """Whether any process raised ``flag``."""
        return self.world.any(flag)

    def stats(self) -> ReducerStats:
        """The gradient all-reduces so far, over every optimizer."""
        total = ReducerStats()
        for r in self.reducers.values():
            total.allreduces += r.stats.allreduces
            total.bytes += r.stats.bytes
            total.comm_seconds += r.stats.comm_seconds
            total.wait_seconds += r.stats.wait_seconds
            total.window_seconds += r.stats.window_seconds
        return total

    def close(self) -> None:
        """Undo the hooks and the optimizer wrapping (the batch norms stay converted)."""
        global _sync_world
        for reducer in self.reducers.values():
            reducer.remove()
        for opt, step, zero_grad in self._originals:
            opt.step, opt.zero_grad = step, zero_grad
        if _sync_world is self.world:
            _sync_world = None


# =========================================================================== faults
def install_fault_handler(world: World) -> None:
    """Make an exception that escapes on any rank end the whole job at once, with that
    rank's traceback (``MPI_Abort``), instead of leaving the others waiting forever in a
    collective."""
    if not world.distributed:
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, value, tb)).rstrip()
        world.abort(f"[rank {world.rank} of {world.size}] {text}")

    sys.excepthook = hook


def describe_error(error: BaseException, where: str) -> str:
    """``WHERE: Kind: message (file.py:line in function)``: one line naming the failure and
    the innermost frame it came from."""
    frames = traceback.extract_tb(error.__traceback__)
    at = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name})"
    return f"{where}: {type(error).__name__}: {error}" + (at if frames else "")


# =========================================================================== the trainer
def _rank_run_class(writer: bool, extra_training: dict[str, Any]) -> type[Any]:
    """A :class:`minigan.run.Run` for one rank: rank 0's writes (config.json gets the world
    size), the others' write nothing at all."""
    from minigan.run import Run

    class RankRun(Run):
        def __init__(self, root: Any) -> None:
            super().__init__(root)
            if not writer:
                self.metrics_path = Path(os.devnull)

        def write_config(self, config: Any, saved: Any) -> None:
            if writer:
                training = {**config.get("training", {}), **extra_training}
                super().write_config({**config, "training": training}, saved)

        def save_checkpoint(self, model: Any, info: Any, position: Any, *args: Any) -> Any:
            if writer:
                return super().save_checkpoint(model, info, position, *args)
            return self.checkpoint_dir / f"step-{model.steps:06d}.safetensors"

    if not writer:
        for name in ("clear", "truncate_metrics", "write_real_samples", "write_samples"):
            setattr(RankRun, name, lambda self, *a, **k: None)
        for name in ("write_gif", "write_losses"):
            setattr(RankRun, name, lambda self, *a, **k: None)
    return RankRun


class DataParallelTrainer(Trainer):
    """A :class:`minigan.trainer.Trainer` that trains data-parallel over ``world`` (what
    :func:`minigan.train.train` runs under ``mpirun -n N``): each rank reads its shard of
    every global batch, steps inside :meth:`DataParallel.step`, logs the metrics averaged
    over the ranks and stops with the others (Ctrl-C, NaN); only rank 0 writes and talks;
    an exception on one rank aborts the job with that rank's error."""

    def __init__(
        self, world: World, sync_bn: bool, model: Any, data: Any = None, **kw: Any
    ) -> None:
        super().__init__(model, data, **kw)
        self.world, self.sync_bn = world, sync_bn
        self.writer = self.world.rank == 0
        if not self.writer:
            self.progress, self.say, self.tensorboard = False, lambda msg: None, False

    def fit(self) -> Any:
        try:
            return super().fit()
        except TrainingDiverged:  # every rank found it at the same step
            raise
        except (Exception, KeyboardInterrupt) as e:  # this rank alone: end the job
            where = f"minigan train (rank {self.world.rank} of {self.world.size})"
            self.world.abort(describe_error(e, where))
            raise
        finally:
            if getattr(self, "dp", None) is not None:
                self._close()

    def setup(self) -> None:
        extra = {"world_size": self.world.size, "sync_bn": bool(self.sync_bn)}
        run_cls = _rank_run_class(self.writer, extra)
        if self.writer:  # rank 0 clears a --force'd run before the others look at it
            self.run, self.ckpt_path, saved = run_cls.open(self.out, self.resume, self.force)
        self.world.barrier()
        if not self.writer:
            self.run, self.ckpt_path, saved = run_cls.open(self.out, self.resume, False)
        self.world.barrier()
        self._resolve_model()
        self.settings = self._settings(saved)
        self._open_data()
        extra["global_batch_size"] = int(self.loader.global_batch_size)
        self._build_model()
        self.epoch, self.batch_index, self.offset = 0, 0, 0
        self.seconds_before = 0.0
        if self.ckpt_path is not None:
            self._resume(self.ckpt_path)
        self.dp = DataParallel(self.world, self.model, sync_bn=self.sync_bn, device=self.device)
        # Open MPI's mpirun kills the job on Ctrl-C but forwards SIGUSR1 to every rank: a
        # stop with a checkpoint is `kill -USR1 <mpirun pid>` (srun forwards Ctrl-C itself)
        self._signalled, self._previous_usr1 = False, None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_usr1)
        self.say(
            f"data-parallel over {self.world.size} processes: {self.loader.batch_size} images "
            f"per process, {self.loader.global_batch_size} per step"
            + (" (SyncBatchNorm)" if self.sync_bn else "")
        )
        self._write_config(saved)
        self._first_samples()

    def _make_loader(self, dataset: Any) -> Any:
        from minigan.data import DataLoader

        return DataLoader(
            dataset,
            self.settings["batch_size"],
            shuffle=True,
            seed=self.settings["seed"],
            drop_last=True,
            device=self.device,
            rank=self.world.rank,
            world_size=self.world.size,
        )

    def _first_samples(self) -> None:
        if self.writer:  # sampling draws no random numbers: the ranks stay in step
            super()._first_samples()
            return
        self.fixed_z = self.model.latents(range(self.num_samples))
        self.meta = {"model": self.model_name, "config": self.info["config"]}
        self.first_step = self.model.steps

    def _step(self, real: Any, labels: Any = None) -> None:
        batches = real if isinstance(real, list) else [real]  # batches_per_step > 1
        with self.dp.step(len(batches[0])):
            super()._step(real, labels)
        self.pending[-1][0]["images"] = self.loader.global_batch_size * len(batches)

    def _stop_requested(self, interrupt: Any) -> bool:
        return self.dp.agree(interrupt.requested or self._signalled)

    def _on_usr1(self, signum: int, frame: Any) -> None:
        self._signalled = True

    def _reduce_metrics(self, values: list[dict[str, float]]) -> list[dict[str, float]]:
        return self.dp.reduce_metrics(values)

    def _close(self) -> None:
        self.dp.close()
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
        stats = self.dp.stats()
        if stats.allreduces and self.model.steps:
            self.say(
                f"gradient all-reduce: {stats.bytes / max(self.model.steps, 1) / 2**20:.2f} "
                f"MB per step in {stats.allreduces} buckets, {stats.comm_seconds:.2f} s "
                f"communicating, {stats.overlap:.0%} of it hidden behind computation"
            )


def data_parallel_trainer(world: World, sync_bn: bool, **options: Any) -> DataParallelTrainer:
    """The :class:`DataParallelTrainer` for :func:`minigan.train.train`'s options."""
    model, data = options.pop("model"), options.pop("data")
    return DataParallelTrainer(world, sync_bn, model, data, **options)
