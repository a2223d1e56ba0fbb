"""Video and audio I/O: PyAV for containers, soundfile for wav/flac/ogg.

Every decoder answers a bad file with :class:`foley.errors.InputError` and a one-line message
(what was wrong with which file); nothing here prints a traceback at a user.

Frames come back as ``uint8 (num_frames, S, S, 3)`` at ``cfg.fps`` and ``cfg.frame_size``
whatever the file's rate (constant, variable, 29.97...), resolution or rotation; audio as
``float32 (num_samples,)`` mono at ``cfg.sample_rate``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from foley.audio import resample, to_mono
from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


@dataclass
class Video:
    """A decoded video, resampled to the contract's rate and size."""

    frames: np.ndarray  # (num_frames, S, S, 3) uint8 at ``fps``
    fps: float
    duration: float  # seconds (of the video stream)
    audio: np.ndarray | None  # (num_samples,) float32 at ``sample_rate``, None if no audio
    sample_rate: int
    source_fps: float
    source_size: tuple[int, int]  # (width, height) as displayed (rotation applied)
    warnings: list[str] = field(default_factory=list)  # one line each: what was recovered

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class Audio:
    """A decoded audio file (or a video's audio track), mono at ``sample_rate``."""

    wave: np.ndarray  # (num_samples,) float32 in [-1, 1]
    sample_rate: int
    warnings: list[str] = field(default_factory=list)  # one line each: what was recovered


@dataclass
class VideoInfo:
    """What a container says about itself, before any decoding."""

    duration: float  # seconds (best estimate)
    width: int
    height: int
    fps: float
    rotation: int  # degrees counter-clockwise (FFmpeg display-matrix convention), 0..359
    has_audio: bool
    num_frames: int  # as declared (0 if the container does not say)


def _name(path: str | os.PathLike) -> str:
    return Path(path).name


def _open(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a video file")
    if p.stat().st_size == 0:
        raise InputError(f"{_name(p)}: the file is empty (0 bytes)")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{_name(p)}: not a readable video or audio file ({_short(err)})") from err


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


def _truncation_warning(name: str, decoded: float, declared: float) -> str | None:
    """The warning for a file that decoded to much less (seconds) than its header declares."""
    if declared > 0 and decoded < declared - max(0.5, 0.1 * declared):
        return (
            f"{name}: decoded {decoded:.1f} s of {declared:.1f} s "
            "(the file looks truncated; only the part that decoded is used)"
        )
    return None


def _stream_rotation(stream) -> int:
    """Rotation in degrees from the display matrix or the legacy ``rotate`` tag."""
    tag = (stream.metadata or {}).get("rotate")
    if tag:
        try:
            return int(float(tag)) % 360
        except ValueError:
            pass
    return 0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read the container header: duration, size, rate, rotation, audio presence."""
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{_name(path)}: has no video stream")
        fmt = container.format.name or ""
        if fmt.endswith("_pipe") or fmt == "image2":
            raise InputError(f"{_name(path)}: is a still image ({fmt}), not a video")
        vs = container.streams.video[0]
        width, height = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        if duration <= 0 and container.duration:
            duration = container.duration / 1_000_000
        rotation = _stream_rotation(vs)
        try:  # the display matrix reaches us on decoded frames (not decoded when oversized)
            too_big = width * height > DEFAULT_CONFIG.max_pixels
            first = None if too_big else next(container.decode(vs), None)
            if first is not None and getattr(first, "rotation", 0):
                rotation = int(first.rotation) % 360
        except Exception:  # noqa: BLE001 - a broken first frame is load_video's to report
            pass
        return VideoInfo(
            duration=duration,
            width=width,
            height=height,
            fps=fps,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            num_frames=int(vs.frames or 0),
        )


def _resize_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is ``size`` (aspect kept), then centre-crop to square."""
    from PIL import Image

    h, w = img.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def _apply_rotation(img: np.ndarray, degrees: int) -> np.ndarray:
    # Display matrices rotate counter-clockwise by ``degrees``; rot90 is counter-clockwise too.
    k = (round(degrees / 90) % 4) if degrees else 0
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


MAX_SOURCE_FPS = 240.0
"""Highest frame rate a video may have (declared, or reached while decoding)."""
MAX_SOURCE_FRAMES = 100_000
"""Most source frames decoded from one file (CPU time; memory is bounded by the output)."""


class _HoldSampler:
    """Sample-and-hold onto ``fps`` while decoding: output frame ``k`` is the last source frame
    shown at or before ``k / fps``.  Only the frame currently held is kept from the source
    (converted and resized only if some output frame picks it), so memory is bounded by the
    output, ``(duration * fps, S, S, 3)`` uint8, whatever the source's rate."""

    def __init__(self, cfg: AVConfig) -> None:
        self.cfg = cfg
        self.out: list[np.ndarray] = []  # (S, S, 3) uint8 at cfg.fps
        self.times: list[float] = []  # seconds since the first source frame
        self.t0: float | None = None
        self.held = None  # (av.VideoFrame, rotation) shown since times[-1]
        self._held_img: np.ndarray | None = None

    def _img(self) -> np.ndarray:
        if self._held_img is None:
            frame, rotation = self.held
            size = self.cfg.frame_size
            scale = size / max(1, min(frame.width, frame.height))
            rw = max(size, round(frame.width * scale))
            rh = max(size, round(frame.height * scale))
            img = frame.to_ndarray(format="rgb24", width=rw, height=rh)
            self._held_img = _resize_crop(_apply_rotation(img, rotation), size)
        return self._held_img

    def _emit_until(self, t: float) -> None:
        """Output frames whose time is before ``t`` (the next source frame's) show the held one."""
        while len(self.out) / self.cfg.fps < t - 1e-6:
            self.out.append(self._img())

    def push(self, t: float, frame, rotation: int) -> float:
        """Add a source frame shown from ``t`` seconds; returns ``t`` since the first frame."""
        if self.t0 is None:
            self.t0 = t
        rel = t - self.t0
        if self.times and rel < self.times[-1]:
            return rel  # out of order (a damaged timestamp): the held frame stays
        if self.held is not None:
            self._emit_until(rel)
        self.held, self._held_img = (frame, rotation), None
        self.times.append(rel)
        return rel

    def finish(self, fallback_fps: float) -> tuple[np.ndarray, float]:
        """(frames (T, S, S, 3) uint8, duration in seconds of the decoded stream)."""
        src = np.asarray(self.times)
        last_dt = float(np.median(np.diff(src))) if len(src) > 1 else 1.0 / fallback_fps
        duration = float(src[-1] + last_dt)
        n_out = max(1, math.floor(duration * self.cfg.fps + 1e-6))
        while len(self.out) < n_out:
            self.out.append(self._img())
        self.held = None
        return np.stack(self.out[:n_out]), duration


def load_video(
    path: str | os.PathLike,
    cfg: AVConfig = DEFAULT_CONFIG,
    *,
    with_audio: bool = True,
    max_seconds: float | None = None,
    max_pixels: int | None = None,
    max_fps: float = MAX_SOURCE_FPS,
    max_frames: int = MAX_SOURCE_FRAMES,
    until: float | None = None,
) -> Video:
    """Decode frames at ``cfg.fps`` / ``cfg.frame_size`` and, if asked, audio at 16 kHz mono.

    Frame ``k`` shows the source frame on screen at time ``k / cfg.fps`` (sample and hold), so
    constant, variable and fractional rates all map onto the same clock.  Frames are resampled
    while decoding (never all held at the source rate); the source's frame rate, frame count,
    pixels and duration are capped with one-line errors.  A file that decodes to much less than
    it declares (truncated) comes back with a line in ``Video.warnings``.  ``until``: decode only
    the first ``until`` seconds (a longer file is no error then).
    """
    import av

    max_seconds = cfg.max_video_seconds if max_seconds is None else max_seconds
    max_pixels = cfg.max_pixels if max_pixels is None else max_pixels
    info = probe_video(path)
    name = _name(path)
    if info.width <= 0 or info.height <= 0:
        raise InputError(
            f"{name}: the video stream has no picture size ({info.width}x{info.height})"
        )
    if info.width * info.height > max_pixels:
        raise InputError(
            f"{name}: resolution {info.width}x{info.height} is above the limit of "
            f"{max_pixels:,} pixels"
        )
    if info.duration > max_seconds and until is None:
        raise InputError(
            f"{name}: {info.duration:.1f} s long, above the limit of {max_seconds:g} s"
        )
    if info.fps > max_fps:
        raise InputError(
            f"{name}: {info.fps:.0f} frames per second, above the limit of {max_fps:g}"
        )
    if info.num_frames > max_frames:
        raise InputError(f"{name}: {info.num_frames:,} frames, above the limit of {max_frames:,}")

    sampler = _HoldSampler(cfg)
    rotation = info.rotation
    warnings: list[str] = []
    try:
        with _open(path) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            for count, frame in enumerate(container.decode(vs), 1):
                if count > max_frames:
                    raise InputError(f"{name}: more than {max_frames:,} frames, above the limit")
                if frame.width * frame.height > max_pixels:
                    raise InputError(
                        f"{name}: a frame of {frame.width}x{frame.height} is above the limit of "
                        f"{max_pixels:,} pixels"
                    )
                t = frame.time if frame.time is not None else count / max(info.fps, 1.0)
                if until is not None and sampler.t0 is not None and t - sampler.t0 >= until:
                    break
                if t > max_seconds:
                    raise InputError(f"{name}: longer than the limit of {max_seconds:g} s")
                rot = getattr(frame, "rotation", 0) or 0
                rotation = int(rot) % 360 if rot else rotation
                rel = sampler.push(float(t), frame, rotation)
                if count > max_fps * (rel + 1.0):
                    raise InputError(
                        f"{name}: more than {max_fps:g} frames per second, above the limit"
                    )
    except av.error.FFmpegError as err:
        if not sampler.times:
            raise InputError(f"{name}: the video stream cannot be decoded ({_short(err)})") from err
        # A damaged tail: keep what decoded, as players do, and say so below.
        warnings.append(f"{name}: decoding stopped early ({_short(err)})")
    if not sampler.times:
        raise InputError(f"{name}: the video stream has no frames")
    stacked, duration = sampler.finish(max(info.fps, cfg.fps))
    truncated = None if until is not None else _truncation_warning(name, duration, info.duration)
    warnings += [truncated] if truncated else []

    audio = None
    if with_audio and info.has_audio:
        decoded = _decode_audio(path, cfg.sample_rate, max_seconds=max_seconds)
        audio = decoded.wave
        if not truncated:  # one line for a file cut short, not one per stream
            warnings += decoded.warnings
    w, h = info.width, info.height
    if rotation in (90, 270):
        w, h = h, w
    return Video(
        frames=stacked,
        fps=cfg.fps,
        duration=duration,
        audio=audio,
        sample_rate=cfg.sample_rate,
        source_fps=info.fps or (len(sampler.times) / duration if duration else 0.0),
        source_size=(w, h),
        warnings=warnings,
    )


def _decode_audio(path: str | os.PathLike, sample_rate: int, max_seconds: float) -> Audio:
    """The first audio stream of any container (PyAV), with a warning when it decodes to much
    less than the container declares or decoding stops at a damaged part."""
    import av

    name = _name(path)
    chunks: list[np.ndarray] = []
    warnings: list[str] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    limit = int(max_seconds * sample_rate)
    declared_seconds = 0.0
    total = 0
    try:
        with _open(path) as container:
            if not container.streams.audio:
                raise InputError(f"{name}: has no audio stream")
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                declared_seconds = float(stream.duration * stream.time_base)
                # AAC pads its last frame: trim to the duration the container declares.
                limit = min(limit, round(declared_seconds * sample_rate))
            elif container.duration and not container.streams.video:
                declared_seconds = container.duration / 1_000_000
            declared = limit
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total > limit + sample_rate:
                    if declared < int(max_seconds * sample_rate):
                        break  # past the declared duration: padding only
                    raise InputError(f"{name}: audio longer than the limit of {max_seconds:g} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as err:
        if not chunks:
            raise InputError(f"{name}: the audio stream cannot be decoded ({_short(err)})") from err
        # A damaged tail: keep what decoded, as players do, and say so.
        warnings.append(f"{name}: audio decoding stopped early ({_short(err)})")
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    wave = _sanitize(wave[:limit], name)
    declared_seconds = min(declared_seconds, max_seconds)
    truncated = _truncation_warning(name, wave.size / sample_rate, declared_seconds)
    return Audio(wave, sample_rate, warnings + ([truncated] if truncated else []))


def _sanitize(wave: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(wave)):
        raise InputError(f"{name}: the audio contains NaN or infinite samples")
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def _wav_declared_frames(path: Path) -> int | None:
    """Sample frames a RIFF/WAVE header declares (its data chunk), None when it does not say
    (not RIFF, or a streamed file's placeholder size). libsndfile reports what is there."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and pos + 22 <= len(head):
            block_align = int.from_bytes(head[pos + 20 : pos + 22], "little")
        if chunk == b"data":
            return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
        pos += 8 + size + (size & 1)
    return None


def _ogg_ends_cleanly(path: Path) -> bool:
    """Whether an Ogg file's last page is whole and marks the end of its stream (a file cut
    short ends inside a page, or after one without the end-of-stream flag)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    at = tail.rfind(b"OggS")
    if at < 0 or at + 27 > len(tail):
        return False
    num_segments = tail[at + 26]
    body = sum(tail[at + 27 : at + 27 + num_segments])
    whole = at + 27 + num_segments + body == len(tail)
    return whole and bool(tail[at + 5] & 0x04)


def _read_soundfile(p: Path, sample_rate: int, max_seconds: float) -> Audio:
    """A wav/flac/ogg/aiff file via libsndfile, keeping what decodes before a damaged part and
    saying so when it decodes to much less than its header declares."""
    import soundfile as sf

    warnings: list[str] = []
    blocks: list[np.ndarray] = []  # (frames, channels) float32 each
    try:
        with sf.SoundFile(str(p)) as f:
            rate, declared = f.samplerate, f.frames
            if declared > max_seconds * rate:
                raise InputError(f"{p.name}: longer than the limit of {max_seconds:g} s")
            try:
                while (block := f.read(4096, dtype="float32", always_2d=True)).shape[0]:
                    blocks.append(block)
            except (RuntimeError, sf.LibsndfileError) as err:
                if not blocks:
                    raise
                warnings.append(f"{p.name}: decoding stopped early ({_short(err)})")
    except (RuntimeError, sf.LibsndfileError) as err:
        raise InputError(f"{p.name}: not a readable audio file ({_short(err)})") from err
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
    if data.shape[0] == 0:
        raise InputError(f"{p.name}: the audio has no samples")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{p.name}: the audio contains NaN or infinite samples")
    if p.suffix.lower() == ".wav":  # libsndfile counts what is there, the header what was
        declared = _wav_declared_frames(p) or declared
    truncated = _truncation_warning(p.name, data.shape[0] / rate, declared / rate)
    if truncated:
        warnings.append(truncated)
    elif p.suffix.lower() in (".ogg", ".oga") and not _ogg_ends_cleanly(p):
        # Ogg declares no length: a stream without its end is all there is to go by.
        warnings.append(
            f"{p.name}: decoded {data.shape[0] / rate:.1f} s; the stream has no end (the file "
            "looks truncated; only the part that decoded is used)"
        )
    wave = _sanitize(resample(to_mono(data), rate, sample_rate), p.name)
    return Audio(wave, sample_rate, warnings)


def read_audio(
    path: str | os.PathLike,
    sample_rate: int = DEFAULT_CONFIG.sample_rate,
    *,
    max_seconds: float = DEFAULT_CONFIG.max_video_seconds,
) -> Audio:
    """Any audio file (or a video's audio track) as mono float32 at ``sample_rate``, with a
    line in ``Audio.warnings`` when the file is truncated or damaged (what decoded is kept)."""
    p = Path(path)
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        if not p.exists():
            raise InputError(f"{p}: no such file")
        if p.stat().st_size == 0:
            raise InputError(f"{p.name}: the file is empty (0 bytes)")
        return _read_soundfile(p, sample_rate, max_seconds)
    audio = _decode_audio(p, sample_rate, max_seconds=max_seconds)
    if audio.wave.size == 0:
        raise InputError(f"{p.name}: the audio has no samples")
    return audio


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = DEFAULT_CONFIG.sample_rate,
    *,
    max_seconds: float = DEFAULT_CONFIG.max_video_seconds,
) -> np.ndarray:
    """:func:`read_audio`'s wave (``(num_samples,)`` float32), without its warnings."""
    return read_audio(path, sample_rate, max_seconds=max_seconds).wave


def save_audio(
    path: str | os.PathLike, wave: np.ndarray, sample_rate: int = DEFAULT_CONFIG.sample_rate
) -> Path:
    """Write a mono wave as wav/flac/ogg (by suffix), 16-bit PCM for wav."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    wave = np.clip(np.nan_to_num(np.asarray(wave, np.float32).reshape(-1)), -1.0, 1.0)
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}.get(p.suffix.lower()[1:])
    sf.write(str(p), wave, sample_rate, subtype=subtype)
    return p


def _add_audio_stream(container, sample_rate: int):
    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    stream.options = {"aac_coder": "fast"}
    return stream


def _encode_audio(container, stream, wave: np.ndarray, sample_rate: int) -> None:
    import av

    wave = np.clip(np.nan_to_num(np.asarray(wave, np.float32).reshape(-1)), -1.0, 1.0)
    chunk = 1024
    for start in range(0, wave.size, chunk):
        piece = wave[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = DEFAULT_CONFIG.sample_rate,
    *,
    crf: int = 23,
    frame_times: np.ndarray | None = None,
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 as H.264 (+ AAC audio) in an mp4.

    ``frame_times`` (seconds, increasing) gives a variable frame rate; otherwise frames are
    ``1/fps`` apart. Output bytes are deterministic for the same input.
    """
    import av

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise InputError(f"frames must be (num_frames, H, W, 3) uint8, got {frames.shape}")
    rate = Fraction(fps).limit_denominator(1001)
    time_base = Fraction(1, 90_000) if frame_times is not None else 1 / rate
    with av.open(str(p), mode="w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height = (
            frames.shape[2] + frames.shape[2] % 2,
            frames.shape[1] + frames.shape[1] % 2,
        )
        vs.pix_fmt = "yuv420p"
        vs.time_base = time_base
        # mbtree off: with it, x264's output bytes can depend on the process's heap state.
        vs.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "mbtree=0",
        }
        vs.codec_context.time_base = time_base
        astream = _add_audio_stream(container, sample_rate) if audio is not None else None
        for i, img in enumerate(frames):
            if img.shape[0] % 2 or img.shape[1] % 2:
                img = np.pad(
                    img, ((0, img.shape[0] % 2), (0, img.shape[1] % 2), (0, 0)), mode="edge"
                )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if frame_times is not None:
                frame.pts = int(round(float(frame_times[i]) * 90_000))
            else:
                frame.pts = i
            frame.time_base = time_base
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode(None):
            container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, audio, sample_rate)
    return p


def mux_audio(
    video_path: str | os.PathLike,
    wave: np.ndarray,
    sample_rate: int,
    out_path: str | os.PathLike,
) -> Path:
    """Copy ``video_path``'s video stream (no re-encode) into ``out_path`` with ``wave`` as audio.

    An existing audio track is replaced.  A video stream the output container cannot hold
    (VP9 from a .webm, say) is re-encoded as H.264 at its own size instead.  ``out_path`` is
    written atomically (temp file, rename), so a failure never leaves a half-written output or
    touches the input.
    """
    import av

    src, dst = Path(video_path), Path(out_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=dst.suffix or ".mp4", dir=dst.parent)
    os.close(fd)
    try:
        try:
            _mux(src, wave, sample_rate, tmp, copy=True)
        except (av.error.FFmpegError, ValueError):
            _mux(src, wave, sample_rate, tmp, copy=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        shutil.move(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def _mux(src: Path, wave: np.ndarray, sample_rate: int, tmp: str, *, copy: bool) -> None:
    """``src``'s video (its packets when ``copy``, else re-encoded) and ``wave`` into ``tmp``."""
    import av

    with _open(src) as inp:
        if not inp.streams.video:
            raise InputError(f"{src.name}: has no video stream")
        in_video = inp.streams.video[0]
        suffix = Path(tmp).suffix.lower()
        fmt = "mp4" if suffix in {".mp4", ".m4v", ".mov", ""} else None
        with av.open(tmp, mode="w", format=fmt) as out:
            rot = _stream_rotation(in_video)
            if copy:
                out_video = out.add_stream_from_template(in_video)
            else:
                out_video = out.add_stream("libx264", rate=in_video.average_rate or 25)
                out_video.width = in_video.codec_context.width // 2 * 2
                out_video.height = in_video.codec_context.height // 2 * 2
                out_video.pix_fmt = "yuv420p"
                out_video.options = {"preset": "veryfast", "threads": "1"}
            if rot:
                out_video.metadata["rotate"] = str(rot)
            astream = _add_audio_stream(out, sample_rate)
            if copy:
                for packet in inp.demux(in_video):
                    if packet.dts is None:
                        continue
                    packet.stream = out_video
                    out.mux(packet)
            else:
                for frame in inp.decode(in_video):
                    frame = frame.reformat(
                        width=out_video.width, height=out_video.height, format="yuv420p"
                    )
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for packet in out_video.encode(frame):
                        out.mux(packet)
                for packet in out_video.encode(None):
                    out.mux(packet)
            _encode_audio(out, astream, wave, sample_rate)


def frames_to_tensor(frames: np.ndarray):
    """``uint8 (T, H, W, 3)`` -> ``torch.float32 (T, 3, H, W)`` in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
