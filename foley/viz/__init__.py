"""Pictures for the app and the docs (mask overlays on frames)."""

from foley.viz.masks import overlay_masks, save_overlay_strip, save_overlay_video

__all__ = ["overlay_masks", "save_overlay_strip", "save_overlay_video"]
