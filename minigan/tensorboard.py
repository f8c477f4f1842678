"""TensorBoard logging of a training run (``minigan train ... --tensorboard``,
``train(..., tensorboard=True)``): every metric as a scalar, the sample grids as images and
the run's config as hyper-parameters, written into ``RUN/tensorboard/`` through tensorboardX
(the ``minigan[tensorboard]`` extra; neither TensorFlow nor PyTorch is needed).

``tensorboard --logdir runs/`` then shows every run side by side. :class:`TensorBoardLogger`
is a :class:`minigan.trainer.MetricsLogger` (``write(records)``, ``close()``) with
``write_images``; :func:`read_events` reads an event file back (tests, scripts).

tensorboardX is imported only when a logger is made, never at ``import minigan``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["TensorBoardLogger", "read_events", "require_tensorboardx"]

PathLike = str | os.PathLike[str]
#: record keys that say where a step is, not how it went: not logged as scalars
POSITION = ("step", "batch")
INSTALL = "pip install 'minigan[tensorboard]' (or: pip install tensorboardX)"


def require_tensorboardx() -> Any:
    """The ``tensorboardX`` module, or an ``ImportError`` saying in one line what to install."""
    try:
        import tensorboardX
    except ImportError:
        raise ImportError(
            f"TensorBoard logging needs tensorboardX, which is not installed: {INSTALL}"
        ) from None
    return tensorboardX


def flat_hparams(
    config: Mapping[str, Any], prefix: str = ""
) -> dict[str, bool | int | float | str]:
    """A nested config as TensorBoard hyper-parameters: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}``;
    values that are not bool, int, float or str (lists, ``None``) become JSON text.

    >>> flat_hparams({"model": "dcgan", "config": {"lr": 0.0002, "ema": None}, "shape": [1, 2]})
    {'model': 'dcgan', 'config/lr': 0.0002, 'config/ema': 'null', 'shape': '[1, 2]'}
    """
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, name + "/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


class TensorBoardLogger:
    """Writes a run's metrics records, sample grids and config to a TensorBoard log folder.

    Args:
        logdir: the folder (``RUN/tensorboard``).
        hparams: the run's config (config.json), written as hyper-parameters with the first
            records; the model's metrics become the hyper-parameter dashboard's metrics.
        purge_step: when resuming, the first step of this call: TensorBoard hides the
            events of the earlier call from that step on (the steps after the checkpoint that
            are trained again).
    """

    def __init__(
        self,
        logdir: PathLike,
        hparams: Mapping[str, Any] | None = None,
        purge_step: int | None = None,
    ) -> None:
        tbx = require_tensorboardx()
        # tensorboardX names the event file by the second it is opened (and truncates an
        # existing one): the first step in the name keeps a resumed call, even in the same
        # second, from overwriting the earlier call's file (and sorts the two in order)
        self.writer = tbx.SummaryWriter(
            logdir=os.fspath(logdir),
            purge_step=purge_step,
            filename_suffix=f".step{purge_step or 0:09d}",
        )
        self.hparams = dict(hparams) if hparams else None

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Every metric of each record as a scalar at the record's step."""
        for record in records:
            step = int(record["step"])
            if self.hparams is not None:
                self._write_hparams([k for k in record if k not in POSITION])
            for key, value in record.items():
                if key not in POSITION:
                    self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def _write_hparams(self, metric_names: list[str]) -> None:
        from tensorboardX.summary import hparams

        metrics = {name: 0.0 for name in metric_names if name != "epoch"}
        experiment, start, end = hparams(flat_hparams(self.hparams or {}), metrics)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)
        self.hparams = None

    def write_images(self, tag: str, grid: np.ndarray, step: int) -> None:
        """An RGB ``uint8`` image (H, W, 3), e.g. a sample grid, at ``step``."""
        grid = np.asarray(grid)
        if grid.ndim == 2:
            grid = np.repeat(grid[..., None], 3, -1)
        self.writer.add_image(tag, grid[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _records(path: PathLike) -> Iterator[bytes]:
    """The records of a TFRecord file: ``uint64 length, uint32 crc, data, uint32 crc``."""
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            f.read(4)
            yield data


def read_events(logdir: PathLike) -> dict[str, Any]:
    """What the event files under ``logdir`` hold: ``scalars`` (tag -> ``[(step, value)]``),
    ``images`` (tag -> ``[(step, PNG bytes)]``) and ``hparams`` (name -> value), parsed with
    tensorboardX's protobuf classes. A step written twice (a resumed run) keeps its last value.
    """
    require_tensorboardx()
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    scalars: dict[str, dict[int, float]] = {}
    images: dict[str, dict[int, bytes]] = {}
    hparams: dict[str, Any] = {}
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(logdir)
        for name in names
        if "tfevents" in name
    )
    for path in files:
        for data in _records(path):
            event = Event.FromString(data)
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
                elif kind == "image":
                    images.setdefault(value.tag, {})[event.step] = value.image.encoded_image_string
                elif value.metadata.plugin_data.plugin_name == "hparams":
                    plugin = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for name, v in plugin.session_start_info.hparams.items():
                        hparams[name] = getattr(v, v.WhichOneof("kind"))
    return {
        "scalars": {tag: sorted(steps.items()) for tag, steps in scalars.items()},
        "images": {tag: sorted(steps.items()) for tag, steps in images.items()},
        "hparams": hparams,
    }
