"""TensorBoard logs of a run (``train.log: [jsonl, tensorboard]``), through torch.utils.tensorboard:
the scalars of every metrics.jsonl record, the evaluation's metrics, sample pictures, histograms of
per-sample energies and the resolved graph file as text, in ``RUN_DIR/tensorboard/``.

A resumed run opens a new event file with ``purge_step`` one past its checkpoint's step, so
TensorBoard hides what the run logged after that checkpoint before it stopped: each step appears
once, as in metrics.jsonl."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import torch

from ebmgraph.errors import DataError

TENSORBOARD_DIR = "tensorboard"


def summary_writer_class():
    """torch.utils.tensorboard's SummaryWriter; DataError saying what to install when the
    tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise DataError("train.log: tensorboard needs the tensorboard package "
                        f"(pip install 'ebmgraph[tensorboard]'): {error}") from None
    return SummaryWriter


class TensorBoardLog:
    """One run's event files; ``start`` is the step the run (re)starts from."""

    def __init__(self, run_dir: Path, start: int, graph_text: str):
        writer_class = summary_writer_class()
        self.writer = writer_class(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start + 1 if start else None)
        if not start:
            self.writer.add_text("graph", "```yaml\n" + graph_text + "```", 0)

    def scalars(self, record: dict, prefix: str = "") -> None:
        """Every finite number of ``record`` (a metrics.jsonl or eval.json record) at its step."""
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(prefix + key, value, step)

    def histograms(self, values: dict[str, torch.Tensor], step: int) -> None:
        for key, tensor in values.items():
            self.writer.add_histogram(key, tensor.float().cpu(), step)

    def picture(self, tag: str, png: Path, step: int) -> None:
        """A PNG the run wrote (a sample grid), as an image at ``step``."""
        image = matplotlib.image.imread(png)[..., :3]
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def text(self, tag: str, lines: list[str], step: int) -> None:
        self.writer.add_text(tag, "\n\n".join(lines), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
