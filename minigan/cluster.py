"""Processing many files on a Dask cluster (``minigan process NAME INPUTS --dask ADDRESS``).

Each input file is one task; a task runs ``process_file(state, source, target)`` on a worker,
where ``state`` (the processor and its network) is made by ``make_state()`` **once per worker
process** and kept for every later task there. Outputs are written by the workers (``target``
on storage they share with the client), atomically; existing outputs are skipped before any
task is sent, so a re-run resumes; a file that fails is reported with its error, and the run
goes on. ``dask.distributed`` is imported only when a cluster is used.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "a.txt").write_text("x")
>>> def upper(state, source, target):
...     pathlib.Path(target).write_text(state + pathlib.Path(source).read_text())
>>> results = map_files(upper, lambda: ">", [(folder / "a.txt", folder / "b.txt")], workers=0)
>>> [r.status for r in results], (folder / "b.txt").read_text()
(['written'], '>x')
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FileResult", "map_files", "process_image_file", "processor_factory", "summary"]

PathLike = str | os.PathLike[str]
_STATES: dict[str, Any] = {}  # per worker process: make_state() results, by token


@dataclass
class FileResult:
    """What happened to one input: ``status`` is ``written``, ``skipped`` (the output
    existed) or ``failed`` (``error`` says why)."""

    source: str
    target: str
    status: str
    error: str | None = None
    seconds: float = 0.0


def _token(make_state: Callable[[], Any]) -> str:
    try:
        return hashlib.sha1(pickle.dumps(make_state)).hexdigest()
    except Exception:  # a lambda or a closure: per object (still once per worker)
        return f"id-{id(make_state)}"


def _state(token: str, make_state: Callable[[], Any]) -> Any:
    """``make_state()``, made once per process and token."""
    if token not in _STATES:
        _STATES[token] = make_state()
    return _STATES[token]


def _run_one(
    token: str,
    make_state: Callable[[], Any],
    process_file: Callable[[Any, str, str], None],
    source: str,
    target: str,
) -> FileResult:
    """One task: never raises (a failure is a result, with its error)."""
    t0 = time.perf_counter()
    try:
        process_file(_state(token, make_state), source, target)
    except Exception as e:
        return FileResult(source, target, "failed", f"{type(e).__name__}: {e}")
    return FileResult(source, target, "written", None, time.perf_counter() - t0)


def _client(address: str | None, workers: int | None) -> tuple[Any, Any]:
    """A Dask client on ``address``, or on a new local cluster of ``workers`` processes
    with one thread each (the caller closes both)."""
    from dask.distributed import Client, LocalCluster

    if address:
        try:
            return Client(address, timeout="20s"), None
        except OSError as e:
            raise ConnectionError(f"--dask {address}: cannot reach the scheduler ({e})") from None
    cluster = LocalCluster(
        n_workers=int(workers or os.cpu_count() or 1),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def map_files(
    process_file: Callable[[Any, str, str], None],
    make_state: Callable[[], Any],
    jobs: Sequence[tuple[PathLike, PathLike]],
    *,
    address: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    desc: str = "files",
) -> list[FileResult]:
    """Run ``process_file(state, source, target)`` for every ``(source, target)`` of
    ``jobs``, on the Dask scheduler at ``address`` or on a local cluster of ``workers``
    processes (``workers=0``: here, in this process, without Dask). ``make_state`` runs once
    per worker. Returns one :class:`FileResult` per job, in the order of ``jobs``."""
    from tqdm.auto import tqdm

    results: list[FileResult | None] = [None] * len(jobs)
    todo = []
    for i, (source, target) in enumerate(jobs):
        if not overwrite and Path(target).exists():
            results[i] = FileResult(str(source), str(target), "skipped")
        else:
            todo.append((i, str(source), str(target)))
    token = _token(make_state)
    bar = tqdm(total=len(todo), desc=desc, unit="file", disable=not progress or not todo)
    if workers == 0 and not address:
        for i, source, target in todo:
            results[i] = _run_one(token, make_state, process_file, source, target)
            bar.update(1)
        bar.close()
        return [r for r in results if r is not None]

    from dask.distributed import as_completed

    client, cluster = _client(address, workers)
    try:
        futures = {
            client.submit(_run_one, token, make_state, process_file, s, t, pure=False): (i, s, t)
            for i, s, t in todo
        }
        for future in as_completed(futures):
            i, source, target = futures[future]
            try:
                results[i] = future.result()
            except Exception as e:  # the worker died (out of memory, killed ...)
                results[i] = FileResult(source, target, "failed", f"{type(e).__name__}: {e}")
            bar.update(1)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- processors
def processor_factory(name: str, config: dict[str, Any]) -> Callable[[], Any]:
    """A picklable ``make_state``: the registered processor ``name`` built with
    ``config`` (on each worker, from its own plugin registry)."""
    import functools

    return functools.partial(_make_processor, name, dict(config))


def _make_processor(name: str, config: dict[str, Any]) -> Any:
    from minigan.registry import get_registry

    cls = get_registry().get("processor", name)
    return cls(cls.Config(**config))


def process_image_file(processor: Any, source: str, target: str, name: str = "") -> None:
    """Read ``source``, run the processor on it as ``minigan process`` does
    (:func:`minigan.processing.process_image`: RGB float input, output checked) and write
    ``target`` (PNG, with the processor's metadata), atomically: a partial output never
    takes the final name."""
    from minigan import images as imaging

    try:
        image = imaging.read_image(source)
    except Exception as e:
        detail = (str(e).splitlines() or [type(e).__name__])[0]
        raise ValueError(f"cannot read this image ({detail})") from None
    from minigan.processing import process_image

    result = process_image(processor, image, name or type(processor).__name__)
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{os.getpid()}.png")
    meta = {"processor": name or type(processor).__name__, "source": str(source)}
    meta.update(processor.metadata())
    try:
        imaging.save_image(partial, imaging.unit_to_uint8(result), meta)
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()


def summary(name: str, results: Sequence[FileResult]) -> list[str]:
    """What ``minigan process``/``dream`` print after :func:`map_files`: a count line, then
    one line per failed file with its error.

    >>> done = [FileResult("a", "b", "written"), FileResult("c", "d", "failed", "OSError: x")]
    >>> summary("dream", done)
    ['dream: wrote 1 image, skipped 0 existing, 1 failed', '  failed: c: OSError: x']
    """
    done = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
    plural = "" if done["written"] == 1 else "s"
    lines = [
        f"{name}: wrote {done['written']} image{plural}, skipped {done['skipped']} existing, "
        f"{done['failed']} failed"
    ]
    return lines + [f"  failed: {r.source}: {r.error}" for r in results if r.status == "failed"]
