"""The training step as a CUDA graph: captured once, then replayed with one launch per step
instead of one per kernel (the small models here launch more kernels than they compute).

Only ever built for a CUDA device (train.uses_cuda_graphs); nothing here runs on the CPU.
The rules of capture, and how this module keeps them:

- Static shapes and addresses. The graph reads the batch's indices from one tensor that
  each step copies into, and indexes the training split, which never moves. The last
  partial batch of an epoch has another shape: it runs eagerly, outside the graph.
- Nothing allocated inside the capture may be re-created by it: the optimizer's state
  (Adam's moments and, capturable, its step count on the device; SGD's momentum) must exist
  before capture, so the first WARMUP_STEPS full batches train eagerly, on a side stream as
  torch's documentation asks. They are real steps of the run, not extra ones.
- zero_grad outside the capture: gradients are dropped once before capture; backward inside
  the graph then writes fresh gradients into memory the graph owns at every replay. Eager
  steps after that zero them in place (keep_grads), so the graph's memory stays theirs.
- Diagnostics outside the replay: a measured step needs a snapshot of the weights between
  backward and the update, so it runs eagerly; measurements read the model between steps.
- Random numbers (dropout) come from torch's graph-safe generator: each replay advances the
  CUDA generator's offset the way the eager step does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps before capture (torch's examples use three)
MIN_GRAPHED_STEPS = 8  # fewer full batches per epoch than this: capturing is not worth it


def worth_capturing(num_train: int, batch_size: int) -> bool:
    return num_train // batch_size >= MIN_GRAPHED_STEPS


class GraphedStep:
    """`step(batch, before_update) -> loss`, like train.eager_step (built with keep_grads),
    replaying a CUDA graph for full batches with nothing to do between backward and the
    update. The loss it returns is the graph's own tensor: read it (or add it somewhere)
    before the next step overwrites it."""

    def __init__(self, prepared, eager: Callable, batch_size: int) -> None:
        self.model, self.optimizer = prepared.model, prepared.optimizer
        self.data, self.eager, self.batch_size = prepared.data, eager, batch_size
        self.device = prepared.data.train_x.device
        self.eager_left = WARMUP_STEPS
        self.failed = False  # capture failed: the run goes on with eager steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: torch.Tensor | None = None
        self.static_loss: torch.Tensor | None = None

    def __call__(self, batch: torch.Tensor, before_update: Callable[[], None] | None):
        if before_update is not None or len(batch) != self.batch_size or self.failed:
            return self.eager(batch, before_update)
        if self.eager_left > 0:
            self.eager_left -= 1
            return self._side_stream_step(batch)
        if self.graph is None:
            try:
                self._capture(batch)
            except RuntimeError as exc:  # an operation that cannot be captured: train without
                log.warning("CUDA graph capture failed, training on without it: %s", exc)
                self.failed = True
                return self.eager(batch, None)
        assert self.static_batch is not None and self.graph is not None  # set by _capture
        self.static_batch.copy_(batch)
        self.graph.replay()
        return self.static_loss

    def _side_stream_step(self, batch: torch.Tensor) -> torch.Tensor:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            loss = self.eager(batch, None)
        torch.cuda.current_stream(self.device).wait_stream(side)
        side.synchronize()  # three steps once per run: simpler than tracking which stream
        return loss  # each tensor was last used on

    def _capture(self, batch: torch.Tensor) -> None:
        torch.cuda.synchronize(self.device)
        self.static_batch = batch.clone()
        model, optimizer, data = self.model, self.optimizer, self.data
        optimizer.zero_grad(set_to_none=True)  # outside the capture (see the module's notes)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            images = data.train_x.index_select(0, self.static_batch)
            targets = data.train_y.index_select(0, self.static_batch)
            loss = torch.nn.functional.nll_loss(model(images), targets)
            loss.backward()
            optimizer.step()
        self.graph, self.static_loss = graph, loss.detach()
