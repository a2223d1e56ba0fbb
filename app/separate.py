"""The app's Separate tab: upload a video with sound, hear and download its on-screen and
off-screen parts (AudioScope, ``foley.pipelines.separation``).

Same rules as generation: the video must come through the app's upload folder (the service's
``input_roots``), its length and size are bounded by the service's limits, outputs go to a fresh
request folder, and messages name files, never server paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from foley.errors import InputError


@dataclass
class SeparateResult:
    on_screen_wav: str
    off_screen_wav: str
    on_screen_video: str
    seconds: float
    sources: int
    note: str


def separate_upload(service, model, video: str | os.PathLike | None) -> SeparateResult:
    """Separate an uploaded video's soundtrack into on- and off-screen wav files."""
    import numpy as np

    from foley.config import DEFAULT_CONFIG
    from foley.io import load_video, mux_audio, save_audio
    from foley.pipelines.separation import separate_track

    if model is None:
        raise InputError(
            "no AudioScope model is loaded: start the app with --audioscope DIR (or a --model "
            "folder holding audioscope/)"
        )
    service.check_video(video)
    cfg = DEFAULT_CONFIG
    decoded = load_video(video, cfg, with_audio=True, max_seconds=service.limits.max_video_seconds)
    if decoded.audio is None or not np.any(decoded.audio):
        raise InputError("the video has no sound to separate: upload a video with sound")
    result = separate_track(model, decoded.audio, decoded.frames, cfg)
    out = service._request_dir()
    on_wav, off_wav = out / "on_screen.wav", out / "off_screen.wav"
    save_audio(on_wav, result.on_screen, cfg.sample_rate)
    save_audio(off_wav, result.off_screen, cfg.sample_rate)
    on_video = out / "on_screen.mp4"
    mux_audio(video, result.on_screen, cfg.sample_rate, on_video)
    probs = np.concatenate(result.probabilities)
    note = (
        f"{decoded.audio.size / cfg.sample_rate:.1f} s in {len(result.probabilities)} window(s); "
        f"on-screen probability of the separated sources: "
        + ", ".join(f"{p:.2f}" for p in probs[:16])
    )
    return SeparateResult(
        str(on_wav),
        str(off_wav),
        str(on_video),
        decoded.audio.size / cfg.sample_rate,
        probs.size,
        note,
    )


def add_separate_tab(gr, service, model_source, shown_as_message) -> None:
    """Add the Separate tab to the Blocks being built. ``model_source``: an AudioScope model
    or a zero-argument callable returning one (loaded on first use)."""
    cache: dict = {}

    def model():
        if "m" not in cache:
            cache["m"] = (
                model_source()
                if callable(model_source) and not hasattr(model_source, "config")
                else model_source
            )
        return cache["m"]

    with gr.Tab("Separate"):
        gr.Markdown(
            "Upload a video **with sound**: AudioScope splits its soundtrack into the sounds "
            "you can see (on screen) and the rest (off screen: ambience, sounds from outside "
            "the frame)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                video_in = gr.Video(label="Video with sound", sources=["upload"], height=280)
                button = gr.Button("Separate", variant="primary", elem_id="separate")
            with gr.Column(scale=1):
                on_video = gr.Video(label="Video with the on-screen sounds", height=280)
                on_audio = gr.Audio(label="On-screen sounds", type="filepath")
                off_audio = gr.Audio(label="Off-screen sounds", type="filepath")
                note_md = gr.Markdown(elem_id="separate-note")

    def on_separate(video):
        with shown_as_message(gr):
            result = separate_upload(service, model(), video)
        return result.on_screen_video, result.on_screen_wav, result.off_screen_wav, result.note

    button.click(
        on_separate,
        [video_in],
        [on_video, on_audio, off_audio, note_md],
        api_name="separate",
        concurrency_limit=service.limits.concurrency,
        concurrency_id="generate",
    )
