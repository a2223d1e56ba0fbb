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
from pathlib import Path

from foley.config import AVConfig
from foley.errors import FoleyError, InputError
from foley.paths import is_within

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
    confine_to: str | os.PathLike | None = None,
):
    """Embed the clips of ``data_dir``'s ``split`` (audio tower) and rebuild ``target``.

    Returns the opened new :class:`~retrieval_index.ClipIndex`.  Raises :class:`InputError` with
    one line for a missing folder, an unreadable metadata file or an empty split; a failure at
    any point leaves the previous version of ``target`` serving.  ``confine_to``: every clip the
    metadata names must lie under this folder (after symlinks and ``..``), else nothing is read.
    """
    from foley.data.ego4d import ClipDataset
    from foley.retrieval import ClipRetriever

    # checked here, with file names only (no server path in an app message), before any read
    root = Path(data_dir).expanduser()
    if not str(data_dir).strip():
        raise InputError("give the data folder to index (it holds <split>.tsv and the clips)")
    if not root.is_dir():
        raise InputError(f"{root.name}: no such data folder")
    dataset = ClipDataset(root, split, cfg)
    if len(dataset) == 0:
        raise InputError(f"{Path(dataset.metadata_path).name}: no clips to index")
    if confine_to is not None:
        for record in dataset.records:
            if not is_within(record.clip_path(root), confine_to):
                raise InputError(
                    f"{Path(dataset.metadata_path).name}: clip {record.clip_file!r} lies outside "
                    "the data root; only clips under it can be indexed"
                )
    retriever = ClipRetriever.build(
        mc3, model_id, root, split, target, cfg=cfg, batch_size=batch_size,
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
