"""The one training loop helper every trainer shares (audiocraft's ``StandardSolver`` idea):
resume, progress bar, metric logging, time budget, checkpoints, EMA export. And the one cosine
learning-rate schedule.

A trainer builds its models, optimizers and EMA, registers what the checkpoint must hold with
the accelerator, then::

    loop = TrainLoop(accelerator, out, total_steps, desc="codec", save_every=500,
                     export=lambda step: ...)        # resumes from OUT/ckpt here
    for step in loop:                                # step: index of the step being run
        ... one optimisation step ...
        loop.end_step(loss=loss.item())              # log / export / checkpoint / time budget

At the end of a step ``end_step`` logs the means of the values since the last log (every
``log_every`` steps and at the last; ``training.common.MetricLog`` calls the fault hook after each
logged step), then, at export points (every ``export_every`` steps, the last step, or when out of
time), calls ``export(step)`` inside the EMA weights when ``ema`` is given and logs the metrics it
returns, and at save points (every ``save_every`` steps, the last step, out of time) writes a
checkpoint holding ``loop.state``. Out of time (``max_minutes``), the run stops after saving:
run it again to continue.

Early stopping: ``export`` calls ``loop.improved(value, patience)`` with its validation loss
(lower is better) and exports only when it returns True; after ``patience`` validations without
improvement the loop saves and stops, and a rerun of a stopped run does not train further.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from training.common import MetricLog, resume, save_checkpoint


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor of step ``step``: linear warm-up over ``warmup_steps``, then a half cosine to
    0 at ``total_steps`` (for ``torch.optim.lr_scheduler.LambdaLR``)."""
    warmup = max(1, int(warmup_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def cosine_schedule(optimizer, total_steps: int, warmup_steps: int):
    """``LambdaLR`` over :func:`warmup_cosine`."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))


def draw_batch(rng: np.random.Generator, num_items: int, batch_size: int) -> np.ndarray:
    """Sorted indices of ``min(batch_size, num_items)`` distinct items (sorted: memmapped rows
    read in order)."""
    return np.sort(rng.choice(num_items, min(batch_size, num_items), replace=False))


@contextmanager
def ema_weights(ema, params) -> Iterator[None]:
    """Within the block, ``params`` hold the EMA weights (diffusers ``EMAModel``); restored
    after. ``ema=None``: the weights as they are."""
    if ema is None:
        yield
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


class TrainLoop:
    """Steps ``total_steps`` from the newest checkpoint of ``out``; see the module docstring.

    export: ``export(step) -> dict | None`` run on every process at export points (write files
    on the main process only); the dict's values are logged at that step.
    state: extra trainer state saved with every checkpoint (``trainer_state.json``); resumed
    values are in ``loop.state`` after construction, and the trainer may update it.
    ema: ``(EMAModel, params)`` whose weights ``export`` sees.
    """

    def __init__(
        self,
        accelerator,
        out: str | os.PathLike,
        total_steps: int,
        *,
        desc: str,
        log_every: int = 10,
        save_every: int = 1000,
        export_every: int | None = None,
        max_minutes: float = 0.0,
        export: Callable[[int], dict | None] | None = None,
        state: dict | None = None,
        ema: tuple | None = None,
        show_bar: bool | None = None,
        postfix: str = "loss",
    ) -> None:
        self.accelerator = accelerator
        self.out = Path(out)
        self.total = int(total_steps)
        self.log_every, self.save_every = int(log_every), int(save_every)
        self.export_every = export_every
        self.max_minutes = float(max_minutes or 0.0)
        self.export = export
        self.ema = ema
        self.postfix = postfix
        resumed = resume(accelerator, self.out)
        self.step = int(resumed.pop("step"))
        self.state = {**(state or {}), **resumed}
        self.log = MetricLog(accelerator, self.out)
        self.stopped = bool(self.state.get("stopped_early"))
        if self.stopped:
            accelerator.print(f"stopped early at step {self.step} (no val improvement): done")
        self._window: dict[str, list[float]] = {}
        self._start = time.time()
        disable = None if show_bar is None else not show_bar
        if not accelerator.is_main_process:
            disable = True
        self.bar = tqdm(total=self.total, initial=self.step, desc=desc, disable=disable)

    @classmethod
    def validating(
        cls,
        accelerator,
        cfg,
        *,
        desc: str,
        log_every: int,
        export: Callable[[int], dict | None],
        state: dict | None = None,
    ) -> TrainLoop:
        """The loop of a trainer that validates, exports and checkpoints every
        ``cfg.val_every`` steps (``cfg``: a config with ``out``, ``steps``, ``val_every`` and
        ``max_minutes``)."""
        return cls(
            accelerator,
            cfg.out,
            cfg.steps,
            desc=desc,
            log_every=log_every,
            save_every=cfg.val_every,
            export_every=cfg.val_every,
            max_minutes=cfg.max_minutes,
            export=export,
            state=state,
        )

    def rng(self, seed: int) -> np.random.Generator:
        """The random generator of the step being run: the same for a step whether the run was
        resumed or not, different on each process."""
        acc = self.accelerator
        rank = [acc.process_index] if acc.num_processes > 1 else []
        return np.random.default_rng([seed, self.step, *rank])

    def optimize(self, loss, optimizer, params, max_norm: float, scheduler=None) -> None:
        """One optimiser update: backward through ``loss``, clip ``params``' gradient norm to
        ``max_norm``, step the optimiser (and the learning-rate ``scheduler`` if any)."""
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(params, max_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    def __iter__(self) -> Iterator[int]:
        try:
            while self.step < self.total and not self.stopped:
                yield self.step
        finally:
            self.bar.close()

    def improved(self, value: float, patience: int = 0, min_delta: float = 0.0) -> bool:
        """Record a validation loss (lower is better): True when it is the best so far; after
        ``patience`` (> 0) validations in a row without improvement the loop stops (early
        stopping, kept in ``state`` so a resumed run stays stopped)."""
        best = self.state.get("best_val")
        if best is None or value < best - min_delta:
            self.state.update(best_val=float(value), best_step=self.step, bad_vals=0)
            return True
        self.state["bad_vals"] = int(self.state.get("bad_vals", 0)) + 1
        if patience > 0 and self.state["bad_vals"] >= patience:
            self.state["stopped_early"] = self.step
            self.stopped = True
            self.accelerator.print(
                f"early stop at step {self.step}: val {value:.5f}, best {best:.5f} at step "
                f"{self.state['best_step']}"
            )
        return False

    @property
    def out_of_time(self) -> bool:
        return bool(self.max_minutes) and (time.time() - self._start) > 60 * self.max_minutes

    def end_step(self, **values: float) -> None:
        """Count the step just run and log, export and save where due (see the module doc)."""
        self.step += 1
        step, last = self.step, self.step == self.total
        for key, value in values.items():  # logged as means over the interval
            self._window.setdefault(key, []).append(float(value))
        self.bar.update(1)
        if self.postfix in values:
            self.bar.set_postfix({self.postfix: f"{float(values[self.postfix]):.4f}"})
        if step % self.log_every == 0 or last:
            self.log(step, **{k: float(np.mean(v)) for k, v in self._window.items()})
            self._window.clear()
        out_of_time = self.out_of_time
        every = self.export_every
        if self.export is not None and (last or out_of_time or (every and step % every == 0)):
            with ema_weights(*(self.ema or (None, None))):
                metrics = self.export(step)
            if metrics:
                self.log(step, **metrics)
        if step % self.save_every == 0 or last or out_of_time or self.stopped:
            save_checkpoint(self.accelerator, self.out, step, self.state)
        if out_of_time:
            self.accelerator.print(
                f"stopped after {self.max_minutes:g} min at step {step} (resumable)"
            )
            self.stopped = True
