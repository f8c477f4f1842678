"""The NCCL channel's logic without a GPU: a recording stand-in for ``cupy`` and
``cupy.cuda.nccl`` checks the NCCL id's bootstrap through MPI, the device chosen by local rank,
the data types, and the stream ordering that lets gradient all-reduces run beside the
computation without the host waiting (the real thing runs only with GPUs)."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from minigan import distributed


class FakeArray:
    """A device array as NCCL sees it: a pointer, a size, a dtype."""

    registry: dict[int, FakeArray] = {}

    def __init__(self, values: np.ndarray) -> None:
        self.host = np.ascontiguousarray(values)
        self.size, self.dtype = self.host.size, self.host.dtype
        self.flags = types.SimpleNamespace(c_contiguous=True)
        self.data = types.SimpleNamespace(ptr=id(self))
        FakeArray.registry[id(self)] = self

    def copy(self) -> FakeArray:
        return FakeArray(self.host.copy())


class Log(list):
    pass


def fake_cupy(log: Log, devices: int = 4) -> Any:
    class Stream:
        count = 0

        def __init__(self, non_blocking: bool = False) -> None:
            Stream.count += 1
            self.ptr = 1000 + Stream.count

        def wait_event(self, event: Any) -> None:
            log.append(("wait", self.ptr, event.name))

    current = Stream()

    class Event:
        count = 0

        def __init__(self) -> None:
            Event.count += 1
            self.name = f"event{Event.count}"

        def record(self, stream: Any) -> None:
            log.append(("record", self.name, stream.ptr))

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        def use(self) -> None:
            log.append(("device", self.index))

    cuda = types.SimpleNamespace(
        Stream=Stream,
        Event=Event,
        Device=Device,
        get_current_stream=lambda: current,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: devices),
    )
    cp = types.SimpleNamespace(cuda=cuda, ascontiguousarray=lambda a: a)
    return cp, current


def fake_nccl(log: Log, world_size: int) -> Any:
    class NcclCommunicator:
        def __init__(self, size: int, uid: Any, rank: int) -> None:
            log.append(("comm", size, uid, rank))

        def allReduce(self, send: int, recv: int, count: int, dtype: int, op: int, stream: int):
            log.append(("allreduce", count, dtype, op, stream))
            a = FakeArray.registry[recv]
            a.host[...] = FakeArray.registry[send].host * world_size  # equal ranks: sum = N x

        def bcast(self, buff: int, count: int, dtype: int, root: int, stream: int) -> None:
            log.append(("bcast", count, dtype, root, stream))

    return types.SimpleNamespace(
        NcclCommunicator=NcclCommunicator,
        get_unique_id=lambda: "nccl-id-from-rank-0",
        NCCL_FLOAT32=7,
        NCCL_FLOAT64=8,
        NCCL_INT64=4,
        NCCL_SUM=0,
    )


class FakeWorld:
    rank, size, local_rank = 1, 2, 5

    def __init__(self, log: Log) -> None:
        self.comm = types.SimpleNamespace(
            bcast=lambda obj, root: log.append(("mpi-bcast", obj, root)) or "nccl-id-from-rank-0"
        )


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Log, Any]:
    log = Log()
    cp, current = fake_cupy(log)
    nccl = fake_nccl(log, world_size=2)
    monkeypatch.setattr(distributed.backend, "cupy", lambda: cp)
    monkeypatch.setitem(
        sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(nccl=nccl))
    )
    monkeypatch.setitem(sys.modules, "cupy.cuda", types.SimpleNamespace(nccl=nccl))
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    return distributed._Nccl(FakeWorld(log)), log, current


def test_bootstrap_picks_the_gpu_by_local_rank_and_shares_rank_0s_id(channel) -> None:
    _, log, _ = channel
    assert ("device", 5 % 4) in log
    assert ("mpi-bcast", None, 0) in log  # rank 1 sends nothing, receives rank 0's id
    assert ("comm", 2, "nccl-id-from-rank-0", 1) in log


def test_allreduce_and_broadcast_run_on_the_current_stream(channel) -> None:
    nccl, log, current = channel
    x = FakeArray(np.arange(3, dtype=np.float64))
    out = nccl.allreduce(x)
    assert out is not x and out.host.tolist() == [0.0, 2.0, 4.0] and x.host[1] == 1.0
    assert log[-1] == ("allreduce", 3, 8, 0, current.ptr)
    nccl.broadcast(FakeArray(np.zeros(4, np.int64)), root=0)
    assert log[-1] == ("bcast", 4, 4, 0, current.ptr)
    with pytest.raises(TypeError, match="float16"):
        nccl.allreduce(FakeArray(np.zeros(2, np.float16)))


def test_gradient_buckets_go_on_their_own_stream_after_the_gradients(channel) -> None:
    nccl, log, current = channel
    del log[:]
    bucket = FakeArray(np.ones(5, np.float32))
    pending = nccl.start(bucket)
    # the comm stream waits for an event recorded on the compute stream, then reduces, then
    # records its own event; the host never waits
    (rec_ready, wait_ready, reduce, rec_done) = log
    assert rec_ready[0] == "record" and rec_ready[2] == current.ptr
    assert wait_ready == ("wait", nccl.stream.ptr, rec_ready[1])
    assert reduce == ("allreduce", 5, 7, 0, nccl.stream.ptr)
    assert rec_done[0] == "record" and rec_done[2] == nccl.stream.ptr
    assert nccl.wait(pending) is bucket and bucket.host.tolist() == [2.0] * 5
    assert log[-1] == ("wait", current.ptr, rec_done[1])  # compute waits on the device
