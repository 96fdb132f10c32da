"""A training step replayed from one CUDA graph (`antiphon train lm --cuda-graph`).

The small LM's eager step on an H200 launches about 3,400 kernels, and the host takes longer to launch
them than the device takes to run them: 69-108 ms a step against 47 ms of device work at batch 64
(`models/train/runs/lm-h200/step-time.md`). Captured once, the whole step (forward, backward, clipping,
the optimizer's update) is replayed with one launch. What a graph needs of the step: a batch of one
shape, copied into the tensor the graph reads; no wait for the device inside it; the learning rate read
from a tensor on the device (AdamW with `capturable=True`); random draws from the device's generator,
which graphs replay with fresh offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)

Figures = dict[str, torch.Tensor]


class CapturedStep:
    """Runs `step` (device work on a batch of one fixed shape, returning its figures) eagerly on a side
    stream for its first `warmup` calls, as capture requires (lazily made state, such as the optimizer's
    and cuBLAS's, must exist first), then captures it and replays the graph on each later batch. A step
    that cannot be captured goes on eagerly, with a warning: the training run is not lost to it."""

    def __init__(self, step: Callable[[torch.Tensor], Figures], warmup: int = 3) -> None:
        self.step = step
        self.warmup_left = warmup
        self.stream = torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.batch: torch.Tensor | None = None
        self.figures: Figures = {}
        self.eager = False

    def __call__(self, batch: torch.Tensor) -> Figures:
        if self.eager:
            return self.step(batch)
        if self.graph is None and self.warmup_left > 0:
            self.warmup_left -= 1
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                figures = self.step(batch)
            torch.cuda.current_stream().wait_stream(self.stream)
            return figures
        if self.graph is None:
            try:
                self._capture(batch)
            except RuntimeError as error:
                logger.warning("the training step could not be captured as a CUDA graph, so it runs eagerly: %s",
                               str(error).splitlines()[0])
                self.eager, self.graph = True, None
                return self.step(batch)
        assert self.batch is not None and self.graph is not None
        self.batch.copy_(batch, non_blocking=True)
        self.graph.replay()
        return {name: value.clone() for name, value in self.figures.items()}

    def _capture(self, batch: torch.Tensor) -> None:
        """Records the step on a copy of `batch`; recording runs nothing, the first replay does."""
        self.batch = batch.clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.figures = self.step(self.batch)
