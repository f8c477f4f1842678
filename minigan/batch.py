"""Processing many files, one at a time: a bad file never stops the others.

``minigan process`` and ``minigan dream`` turn their inputs into :class:`Job`\\ s (a source
image and the output it makes, :func:`plan_jobs`), run each with :func:`run_job` — which never
raises for one file's problem, it reports it — and collect a :class:`BatchReport`: what was
written, what was skipped because its output already exists (so a re-run resumes), and every
failure with its reason. :func:`run_job` is the unit a distributed back-end calls per file.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> for name in ("a.png", "b.png", "bad.png"):
...     _ = (folder / name).write_text(name)
>>> def work(source, target):
...     if source.name == "bad.png":
...         raise ValueError(f"{source.name}: not an image")
...     target.parent.mkdir(parents=True, exist_ok=True)
...     target.write_text("done")
>>> jobs = plan_jobs([folder], None, "copy", (".png",))
>>> report = run_jobs(jobs, work, progress=False)
>>> [job.source.name for job in report.done], report.failed[0][1]
(['a.png', 'b.png'], 'bad.png: not an image')
>>> [job.source.name for job in run_jobs(jobs, work, progress=False).skipped]  # a re-run
['a.png', 'b.png']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from minigan.errors import describe

__all__ = ["Job", "BatchReport", "image_files", "plan_jobs", "run_job", "run_jobs"]

PathLike = str | os.PathLike[str]
Work = Callable[[Path, Path], None]  # work(source, target): read, process, write
Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Job:
    """One input file and the output file it makes."""

    source: Path
    target: Path


@dataclass
class BatchReport:
    """What a batch did: written, skipped (output existed), failed (with the reason)."""

    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, job: Job, status: Status, reason: str | None = None) -> None:
        if status == "failed":
            self.failed.append((job, reason or "failed"))
        else:
            (self.done if status == "done" else self.skipped).append(job)

    def summary(self, name: str) -> str:
        """``NAME: wrote 3 images, skipped 1 existing, 1 failed`` (as the Dask back-end says).

        >>> BatchReport().summary("dream")
        'dream: wrote 0 images, skipped 0 existing, 0 failed'
        """
        plural = "" if len(self.done) == 1 else "s"
        return (
            f"{name}: wrote {len(self.done)} image{plural}, skipped {len(self.skipped)} "
            f"existing, {len(self.failed)} failed"
        )


def image_files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Image files below ``folder``, sorted; hidden files and folders (and so the temporary
    files of an interrupted write) are left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in extensions
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def plan_jobs(
    inputs: Iterable[PathLike],
    out: PathLike | None,
    name: str,
    extensions: Sequence[str],
    sep: str = "-",
) -> list[Job]:
    """The jobs for ``inputs`` (files and folders, searched recursively).

    Outputs: one file input with an ``out`` that has a suffix -> ``out`` itself; a folder ->
    ``out/<relative path>.png`` (default: a sibling folder ``FOLDER-<name>``); other files ->
    ``<out or its own folder>/<stem>-<name>.png`` (``sep`` instead of ``-``). A folder
    without images is an error.
    """
    items = [Path(i) for i in inputs]
    jobs: list[Job] = []
    for item in items:
        if item.is_dir():
            files = image_files(item, extensions)
            if not files:
                raise ValueError(f"{item}: no images found in this folder")
            target = Path(out) if out else item.with_name(f"{item.name}{sep}{name}")
            jobs += [Job(p, target / p.relative_to(item).with_suffix(".png")) for p in files]
        elif len(items) == 1 and out and Path(out).suffix:
            jobs.append(Job(item, Path(out)))
        else:
            target = Path(out) if out else item.parent
            jobs.append(Job(item, target / f"{item.stem}{sep}{name}.png"))
    return jobs


def run_job(job: Job, work: Work, overwrite: bool = False) -> tuple[Status, str | None]:
    """Run one job: ``("done", None)``, ``("skipped", None)`` when its output exists and not
    ``overwrite``, or ``("failed", reason)`` — any ``Exception`` becomes its one-line reason
    (:func:`minigan.errors.describe`); only ``KeyboardInterrupt`` and the like escape."""
    if not overwrite and job.target.exists():
        return "skipped", None
    try:
        work(job.source, job.target)
    except Exception as e:
        return "failed", describe(e)
    return "done", None


def run_jobs(
    jobs: Sequence[Job],
    work: Work,
    *,
    overwrite: bool = False,
    progress: bool = True,
    desc: str = "",
) -> BatchReport:
    """Run every job in order (with a progress bar when ``progress`` and there are several)
    and report; one job's failure never stops the rest."""
    from tqdm.auto import tqdm

    report = BatchReport()
    bar = tqdm(jobs, desc=desc, unit="image", disable=not progress or len(jobs) < 2)
    for job in bar:
        status, reason = run_job(job, work, overwrite)
        report.add(job, status, reason)
    return report
