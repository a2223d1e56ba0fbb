"""FoleyWorld: the project's procedural dataset in Ego4D-Sounds format, with ground truth.

``foley make-dataset`` (:func:`generate_dataset`) writes long videos made of narrated 3-second
clips: a hand knocks, taps, drops, scrapes, pours into, tears or cuts objects of six materials
(or just holds or looks at them, silently) in a scene whose ambient bed persists over the video;
some sounds come from off screen.  Modules: ``vocab`` (words), ``scene`` (planning), ``synth``
and ``ambient`` (sound), ``bank`` (user recordings), ``sprites`` and ``render`` (pictures),
``tracks`` (audio tracks), ``generate`` (files and workers).
"""

from foley.data.foleyworld.generate import Clip, generate_dataset, make_clip, write_clip
from foley.data.foleyworld.scene import FoleyWorldSettings, plan_clip, plan_video

__all__ = [
    "Clip",
    "FoleyWorldSettings",
    "generate_dataset",
    "make_clip",
    "plan_clip",
    "plan_video",
    "write_clip",
]
