"""Index rebuilds for the app: embed a data folder with MC3 and write a new index version.

:func:`build_index` is the plain function (also used by the tests to make a fixture index);
:class:`RebuildJob` runs it in a background thread and reports progress.  The index is rebuilt
with :meth:`retrieval_index.ClipIndex.rebuild`, which writes a complete new version and switches
to it atomically: until the switch, every query is served by the previous version.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foley.config import AVConfig
from foley.errors import FoleyError

ProgressFn = Callable[[int, int], None]  # (clips embedded so far, clips in total)


def build_index(
    data_dir: str | os.PathLike,
    split: str,
    target: str | os.PathLike,
    mc3,
    model_id: str,
    cfg: AVConfig,
    *,
    batch_size: int = 8,
    on_progress: ProgressFn | None = None,
):
    """Embed the clips of ``data_dir``'s ``split`` (audio tower) and rebuild ``target``.

    Returns the opened new :class:`~retrieval_index.ClipIndex`.  Raises :class:`InputError` with
    one line for a missing folder, an unreadable metadata file or an empty split; a failure at
    any point leaves the previous version of ``target`` serving.
    """
    from foley.retrieval import ClipRetriever

    retriever = ClipRetriever.build(
        mc3, model_id, data_dir, split, target, cfg=cfg, batch_size=batch_size,
        progress=False, on_progress=on_progress,
    )  # fmt: skip
    return retriever.index


@dataclass
class RebuildJob:
    """One background rebuild: read ``state``, ``done``/``total``, ``error``; ``wait()``."""

    data_dir: str
    split: str
    target: str
    state: str = "running"  # running | done | failed
    done: int = 0
    total: int = 0
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    index: object | None = None  # the new ClipIndex once done
    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        """One line for the UI."""
        if self.state == "running":
            return f"embedding clips of {self.data_dir} ({self.split}): {self.done}/{self.total}"
        if self.state == "failed":
            return f"rebuild failed: {self.error}"
        took = (self.finished or time.time()) - self.started
        return (
            f"rebuilt {self.target} from {self.data_dir} ({self.split}): "
            f"{self.done} clips in {took:.1f} s"
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds pass); True when it has ended."""
        return self._event.wait(timeout)

    def start(
        self,
        work: Callable[[ProgressFn], object],
        on_done: Callable[[object], None],
        on_progress: ProgressFn | None = None,
    ) -> RebuildJob:
        """Run ``work(progress)`` in a daemon thread; ``on_done(new_index)`` on success."""

        def progress(done: int, total: int) -> None:
            self.done, self.total = done, total
            if on_progress:
                on_progress(done, total)

        def run() -> None:
            try:
                self.index = work(progress)
                on_done(self.index)
                self.state = "done"
            except FoleyError as err:
                self.error, self.state = str(err), "failed"
            except Exception as err:  # noqa: BLE001 - reported as one line, never a traceback
                import logging

                logging.getLogger(__name__).exception("index rebuild failed")
                first = (str(err).strip().splitlines() or [""])[0][:200]
                self.error, self.state = f"{type(err).__name__}: {first}", "failed"
            finally:
                self.finished = time.time()
                self._event.set()

        threading.Thread(target=run, name="foley-index-rebuild", daemon=True).start()
        return self
