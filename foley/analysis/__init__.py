"""Analysis of any (video, audio) pair, generated or not, apart from generation.

* :func:`sounding_masks`: the AVS model's per-frame sounding-object masks of an audio track on a
  video, and its no-ground-truth alignment score (:mod:`foley.analysis.masks`);
* :func:`write_overlay`: masks drawn over the frames as a PNG strip or an MP4
  (:mod:`foley.analysis.overlay`), the one writer the CLI and the app use.

``FoleyPipeline(..., return_masks=True)`` and ``FoleyPipeline.sounding_masks`` call these;
* :func:`sound_heatmaps`: DenseAV's "where the sound comes from" heatmaps and its alignment
  score against time-shuffled audio, no masks needed (:mod:`foley.analysis.heatmaps`).
"""

from foley.analysis.heatmaps import sound_heatmaps
from foley.analysis.masks import sounding_masks, window_frames
from foley.analysis.overlay import write_overlay

__all__ = ["sound_heatmaps", "sounding_masks", "window_frames", "write_overlay"]
