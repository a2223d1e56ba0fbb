"""Audio-visual segmentation: which pixels make the sound (AVSBench's TPAVI, ECCV 2022).

The network follows AVSBench's layout at a size that trains on a CPU:

* a small CNN gives visual features at several scales (1/4, 1/8, 1/16 of the frame);
* an ASPP-like head per scale (parallel dilated 3x3 convolutions, summed) maps each to
  ``channels``;
* a TPAVI block per scale mixes in the audio of each frame's time window;
* an FPN-style decoder goes from the coarsest scale back to 1/4 and a head upsamples to full
  resolution mask logits ``(batch, T, H, W)``.

TPAVI is a non-local block whose keys are the audio feature of frame ``t`` broadcast over the
frame's pixels.  Because the key is constant over space, the ``THW x THW`` attention matrix has
``T`` distinct columns only, and the block factorises: for AVSBench's ``"dot"`` mode
``y_i = theta_i^T M`` with ``M = (1/THW) sum_t phi(a_t) (sum_{hw} g_{t,hw})^T``, a
``(inter x inter)`` matrix per clip; for the ``"embedded"`` (softmax) mode
``y_i = softmax_t(theta_i . phi(a_t)) @ mean_{hw} g_t``.  Neither ever builds the ``THW x THW``
matrix; ``tests/test_avs.py`` checks both against the naive form.

One deliberate addition (``frame_local_audio=True``, off gives AVSBench's block): in TPAVI every
pixel attends to the audio of all ``T`` frames, so the block can tell *which* object sounds but
not *when* (in ``"dot"`` mode its output is even the same matrix ``M`` for every frame).
AVSBench's clips sound throughout; FoleyWorld's sounds are short events and most frames are
silent, so each pixel also meets its own frame's audio: ``theta(x_{t,hw}) * phi(a_t)``,
channel-wise, added to the attention output before ``W_z``.

Optional motion input (``frame_diff=True``, off by default): the visual stem also sees each
frame's difference to its predecessor at the video rate (:func:`frame_differences`), so that
*when* a hand moves, and not only where the object is, is local visual evidence.  Callers that
pass a subset of a clip's frames give each frame's true predecessor as ``prev_frames``.

Losses (:func:`avs_loss`): per-pixel BCE on the labelled frames plus AVSBench's audio-visual
matching term (KL between the softmax of the audio feature and of the mask-pooled visual
feature of each TPAVI stage).  The two AVSBench settings differ in which frames are labelled:
single-source semi-supervised (first frame of each clip only) and multi-source (all frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from foley.audio import log_mel
from foley.config import DEFAULT_CONFIG, AVConfig
from foley.errors import InputError
from foley.models.video_encoder import frame_differences


def _conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TPAVI(nn.Module):
    """Temporal pixel-wise audio-visual interaction, factorised (never builds ``THW x THW``).

    ``forward(x (B, C, T, h, w), audio (B, T, audio_dim)) -> (z (B, C, T, h, w), a (B, T, C))``
    where ``a`` is the audio feature aligned to ``C`` channels (used by the matching loss).
    """

    def __init__(
        self, channels: int, audio_dim: int, mode: str = "dot", frame_local: bool = True
    ) -> None:
        super().__init__()
        if mode not in ("dot", "embedded"):
            raise ValueError(f"TPAVI mode must be 'dot' or 'embedded', not {mode!r}")
        self.mode = mode
        self.frame_local = frame_local
        inter = max(channels // 2, 1)
        self.align_channel = nn.Linear(audio_dim, channels)
        self.theta = nn.Conv3d(channels, inter, 1)
        self.phi = nn.Conv3d(channels, inter, 1)
        self.g = nn.Conv3d(channels, inter, 1)
        self.w_z = nn.Conv3d(inter, channels, 1)
        # The block starts as the identity (as AVSBench's zero-initialised BN in W_z).
        nn.init.zeros_(self.w_z.weight)
        nn.init.zeros_(self.w_z.bias)
        self.norm = nn.LayerNorm(channels)

    def attend(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The attention output ``y`` (B, inter, T, h, w), factorised over space."""
        b, _, t, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, THW, inter)
        g = self.g(x).flatten(3)  # (B, inter, T, hw)
        phi_a = self.phi_audio(audio)  # (B, T, inter)
        if self.mode == "dot":
            g_sum = g.sum(-1).transpose(1, 2)  # (B, T, inter): sum over the frame's pixels
            m = torch.einsum("bti,btj->bij", phi_a, g_sum) / (t * h * w)  # (B, inter, inter)
            y = theta @ m  # (B, THW, inter)
        else:
            scores = theta @ phi_a.transpose(1, 2)  # (B, THW, T); each repeated hw times
            g_mean = g.mean(-1).transpose(1, 2)  # (B, T, inter)
            y = scores.softmax(-1) @ g_mean  # (B, THW, inter)
        return y.transpose(1, 2).reshape(b, -1, t, h, w)

    def local(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Frame-local term ``theta(x_{t,hw}) * phi(a_t)`` (B, inter, T, h, w), channel-wise.

        Not in AVSBench: there every pixel attends to the audio of *all* frames, which tells
        which object sounds but not *when*; FoleyWorld's sounds are short events, so each frame
        also sees its own window's audio.
        """
        theta, phi_a = self.keys(x, audio)
        return theta * phi_a.transpose(1, 2)[..., None, None]

    def phi_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``phi(a_t)`` (B, T, inter): phi is a 1x1x1 conv, and on a spatially constant map it
        is a linear map of ``a_t``."""
        return F.linear(audio, self.phi.weight.flatten(1), self.phi.bias)

    def keys(self, x: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sides the frame-local term multiplies: ``theta(x)`` (B, inter, T, h, w) and
        ``phi(a_t)`` (B, T, inter) (``audio`` already aligned); the contrastive term and the
        content gate compare them."""
        return self.theta(x), self.phi_audio(audio)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.align_channel(audio)  # (B, T, C)
        y = self.attend(x, a)
        if self.frame_local:
            y = y + self.local(x, a)
        z = self.w_z(y) + x
        z = self.norm(z.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return z, a


class AudioWindowEncoder(nn.Module):
    """Log-mel windows centred on each frame's time -> one feature per frame.

    ``forward(wave (B, N), frame_times (B, T) seconds) -> (B, T, audio_dim)``.
    """

    def __init__(self, cfg: AVConfig, window: int, audio_dim: int, width: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.window = window
        self.input_norm = nn.BatchNorm2d(2)
        self.net = nn.Sequential(
            _conv_bn(2, width, stride=2),
            _conv_bn(width, 2 * width, stride=2),
            _conv_bn(2 * width, 4 * width, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, audio_dim),
        )

    def windows(self, wave: torch.Tensor, frame_times: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, T, 2, n_mels, window)`` of the log-mel (channel 0) and of the log-mel
        minus the clip's per-band median (channel 1: the steady bed removed, events stand out).
        The clip's edges are padded by replication."""
        mel = log_mel(wave, self.cfg)  # (B, n_mels, M)
        mel = torch.cat([mel, mel - mel.median(-1, keepdim=True).values], 1)  # (B, 2*n_mels, M)
        half = self.window // 2
        mel = F.pad(mel, (half, self.window - half), mode="replicate")
        centre = torch.round(frame_times * self.cfg.sample_rate / self.cfg.mel_hop_length).long()
        centre = centre.clamp(0, mel.shape[-1] - self.window - 1)
        idx = centre[..., None] + torch.arange(self.window, device=wave.device)  # (B, T, win)
        b, t, win = idx.shape
        gathered = torch.gather(mel, 2, idx.reshape(b, 1, t * win).expand(-1, mel.shape[1], -1))
        return gathered.reshape(b, 2, -1, t, win).permute(0, 3, 1, 2, 4)

    def forward(self, wave: torch.Tensor, frame_times: torch.Tensor) -> torch.Tensor:
        win = self.windows(wave, frame_times)  # (B, T, 2, n_mels, window)
        b, t = win.shape[:2]
        feats = self.net(self.input_norm(win.reshape(b * t, *win.shape[2:])))
        return feats.reshape(b, t, -1)


@dataclass
class AVSOutput:
    """Mask logits plus what the matching loss needs.

    logits (B, T, H, W); audio_features: per TPAVI stage (B, T, C); visual_maps: per TPAVI
    stage the block's output (B, C, T, h, w); visual_inputs: per TPAVI stage its input, the
    visual features before any audio is mixed in (B, C, T, h, w).
    """

    logits: torch.Tensor
    audio_features: list[torch.Tensor]
    visual_maps: list[torch.Tensor]
    visual_inputs: list[torch.Tensor] | None = None


class AVSModel(ModelMixin, ConfigMixin):
    """TPAVI audio-visual segmentation: ``forward(frames, wave) -> mask logits (B, T, H, W)``.

    Frames are ``(batch, T, 3, H, W)`` floats in [0, 1]; ``wave`` is ``(batch, N)`` mono at
    ``av_config["sample_rate"]``.  Frame ``t`` is taken to be centred at ``frame_times[:, t]``
    seconds into the wave; by default the frames are evenly spaced over the wave's duration
    (centre of frame t at ``(t + 0.5) * N / T`` samples), which is what a clip decoded at a fixed
    rate gives.

    ``frame_diff=True`` gives the visual stem 6 channels: the frame and its difference to its
    predecessor (:func:`frame_differences`; ``prev_frames`` in :meth:`forward`).  The default,
    False, is the original 3-channel model (every saved model without the key loads as it).
    """

    @register_to_config
    def __init__(
        self,
        stage_channels: tuple[int, ...] = (24, 48, 96),
        channels: int = 32,
        aspp_dilations: tuple[int, ...] = (1, 2, 4),
        audio_dim: int = 64,
        audio_width: int = 16,
        audio_window: int = 48,
        tpavi_mode: str = "dot",
        frame_local_audio: bool = True,
        input_size: int | None = None,
        av_config: dict | None = None,
        frame_diff: bool = False,
        content_gate: bool = False,
    ) -> None:
        super().__init__()
        if int(audio_window) < 1:
            raise InputError(f"audio_window must be >= 1 log-mel frame, got {audio_window}")
        self.av = AVConfig(**av_config) if av_config else DEFAULT_CONFIG
        stage_channels = tuple(stage_channels)
        in_channels = 6 if frame_diff else 3  # RGB (+ difference to the previous frame)
        self.stem = _conv_bn(in_channels, stage_channels[0] // 2, stride=2)  # 1/2
        cin = stage_channels[0] // 2
        self.stages = nn.ModuleList()
        for cout in stage_channels:  # 1/4, 1/8, 1/16, ...
            self.stages.append(nn.Sequential(_conv_bn(cin, cout, stride=2), _conv_bn(cout, cout)))
            cin = cout
        self.aspp = nn.ModuleList(
            nn.ModuleList(
                nn.Conv2d(c, channels, 3, padding=d, dilation=d) for d in tuple(aspp_dilations)
            )
            for c in stage_channels
        )
        self.audio = AudioWindowEncoder(self.av, audio_window, audio_dim, audio_width)
        self.tpavi = nn.ModuleList(
            TPAVI(channels, audio_dim, tpavi_mode, frame_local_audio) for _ in stage_channels
        )
        self.fuse = nn.ModuleList(_conv_bn(channels, channels) for _ in stage_channels[:-1])
        self.head = nn.Sequential(_conv_bn(channels, channels), nn.Conv2d(channels, 1, 1))
        if content_gate:  # starts at 0: the plain model, until the similarity earns its weight
            self.gate_scale = nn.Parameter(torch.zeros(()))

    def content_similarity(
        self, inputs: list[torch.Tensor], audio_feats: list[torch.Tensor], size: tuple[int, int]
    ) -> torch.Tensor:
        """Per pixel, the cosine between its visual key and its frame's audio key
        (:meth:`TPAVI.keys`), averaged over the stages at full size: (B, T, H, W) in [-1, 1].
        What the contrastive term trains: high where the pixel looks like what the audio
        sounds like (``content_gate`` adds it, scaled, to the logits)."""
        total = 0
        for tpavi, v, a in zip(self.tpavi, inputs, audio_feats):
            theta, phi_a = tpavi.keys(v, a)  # (B, inter, T, h, w), (B, T, inter)
            cos = F.cosine_similarity(theta, phi_a.transpose(1, 2)[..., None, None], dim=1)
            total = total + F.interpolate(cos, size=size, mode="bilinear")  # T as channels
        return total / len(self.tpavi)

    def default_frame_times(
        self, batch: int, num_frames: int, num_samples: int, device
    ) -> torch.Tensor:
        """Centres (seconds) of ``num_frames`` frames evenly spread over ``num_samples``."""
        centres = (torch.arange(num_frames, device=device) + 0.5) * num_samples / num_frames
        return (centres / self.av.sample_rate).expand(batch, -1)

    def forward(
        self,
        frames: torch.Tensor,
        wave: torch.Tensor,
        frame_times: torch.Tensor | None = None,
        return_features: bool = False,
        prev_frames: torch.Tensor | None = None,
    ) -> torch.Tensor | AVSOutput:
        """frames (B, T, 3, H, W) in [0, 1], wave (B, N), frame_times (B, T) s -> (B, T, H, W).

        prev_frames (B, T, 3, H, W) in [0, 1]: each frame's predecessor at the video rate, used
        only by a ``frame_diff`` model; None takes ``frames`` to be consecutive (the first
        frame's difference is zero).  Ignored by a model without ``frame_diff``.
        """
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise InputError(f"frames must be (batch, T, 3, H, W), got {tuple(frames.shape)}")
        if wave.ndim != 2 or wave.shape[0] != frames.shape[0]:
            raise InputError(f"wave must be (batch, num_samples), got {tuple(wave.shape)}")
        b, t, _, h, w = frames.shape
        if frame_times is None:
            frame_times = self.default_frame_times(b, t, wave.shape[1], frames.device)
        audio = self.audio(wave.to(frames.dtype), frame_times)  # (B, T, audio_dim)

        x = frames * 2.0 - 1.0
        if self.config.frame_diff:  # in the same units as x: x_t - x_{t-1}
            x = torch.cat([x, 2.0 * frame_differences(frames, prev_frames)], 2)
        x = x.reshape(b * t, x.shape[2], h, w)
        if self.config.input_size and (h, w) != (self.config.input_size,) * 2:
            x = F.interpolate(
                x, size=(self.config.input_size,) * 2, mode="bilinear", antialias=True
            )
        x = self.stem(x)
        maps, audio_feats, inputs = [], [], []
        for stage, aspp, tpavi in zip(self.stages, self.aspp, self.tpavi):
            x = stage(x)
            v = sum(conv(x) for conv in aspp)  # (B*T, C, h, w)
            v = v.reshape(b, t, *v.shape[1:]).transpose(1, 2)  # (B, C, T, h, w)
            z, a = tpavi(v, audio)
            maps.append(z)
            audio_feats.append(a)
            inputs.append(v)

        def frames_first(z: torch.Tensor) -> torch.Tensor:  # (B, C, T, h, w) -> (B*T, C, h, w)
            return z.transpose(1, 2).reshape(b * t, *z.shape[1:2], *z.shape[3:])

        y = frames_first(maps[-1])
        for z, fuse in zip(reversed(maps[:-1]), reversed(self.fuse)):
            lateral = frames_first(z)
            y = fuse(F.interpolate(y, size=lateral.shape[-2:], mode="bilinear") + lateral)
        logits = F.interpolate(self.head(y), size=(h, w), mode="bilinear").reshape(b, t, h, w)
        if self.config.content_gate:
            logits = logits + self.gate_scale * self.content_similarity(inputs, audio_feats, (h, w))
        if return_features:
            return AVSOutput(logits, audio_feats, maps, inputs)
        return logits


def audio_visual_matching_loss(out: AVSOutput) -> torch.Tensor:
    """AVSBench's L_AVM: KL(softmax(audio) || softmax(mask-pooled visual)) per frame, per stage.

    For each TPAVI stage the predicted mask (sigmoid of logits average-pooled to the stage's
    size) weights the stage's visual map; the mean over pixels is the masked visual feature.
    Both features are L2-normalised, then compared with KL divergence as AVSBench does
    (``F.kl_div(log softmax(v), softmax(a))``), averaged over frames and stages (AVSBench sums
    over the batch; a mean keeps the weight independent of batch size).
    """
    b, t, h, w = out.logits.shape
    total = out.logits.new_zeros(())
    for a, z in zip(out.audio_features, out.visual_maps):
        zh, zw = z.shape[-2:]
        mask = torch.sigmoid(F.adaptive_avg_pool2d(out.logits.reshape(b * t, 1, h, w), (zh, zw)))
        v_map = z.transpose(1, 2).reshape(b * t, z.shape[1], zh, zw)
        v = F.normalize((v_map * mask).mean((-1, -2)), dim=-1)  # (B*T, C)
        a_n = F.normalize(a.reshape(b * t, -1), dim=-1)
        total = total + F.kl_div(v.log_softmax(-1), a_n.softmax(-1), reduction="batchmean")
    return total / len(out.audio_features)


def audio_visual_contrastive_loss(
    model: AVSModel,
    out: AVSOutput,
    masks: torch.Tensor,
    labelled: torch.Tensor | None = None,
    wave: torch.Tensor | None = None,
    frame_times: torch.Tensor | None = None,
    temperature: float = 0.1,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE between each clip's sounding object and the clips' sounds (not in AVSBench).

    Per TPAVI stage, the two sides its frame-local term multiplies (:meth:`TPAVI.keys`): the
    visual key ``theta(v)`` averaged over the ground-truth ``masks`` (B, T, H, W) of the clip's
    labelled frames that have one, and the audio key ``phi(a_t)`` averaged over the same
    frames.  Over the clips of the batch that have such frames, each object must pick its own
    clip's sound among the others' and each sound its object (cross-entropy both ways on cosine
    similarities / ``temperature``).  This is the content signal that AVSBench's KL term was
    meant to give: the audio features must say *what* sounds (a metal ring, a wooden thud) and
    the object's features what it is made of, in the space where the block compares them.

    ``wave`` (B, N) with ``frame_times``: the clips' true audio when the batch fed the network
    something else (training negatives); the audio keys are then computed from it (the
    visual side is the batch's).  ``groups`` (B,) int: clips of one group (e.g. the same
    material) sound alike, so they are not used as each other's negatives.  Zero when fewer
    than two clips qualify.
    """
    b, t, h, w = out.logits.shape
    if labelled is None:
        labelled = torch.ones(b, t, dtype=torch.bool, device=masks.device)
    has = labelled & masks.flatten(2).any(-1)  # (B, T) frames that show the sounding object
    clips = has.any(1)
    if int(clips.sum()) < 2 or not out.visual_inputs:
        return out.logits.new_zeros(())
    audio = out.audio_features
    if wave is not None:
        if frame_times is None:
            frame_times = model.default_frame_times(b, t, wave.shape[1], wave.device)
        feats = model.audio(wave.to(out.logits.dtype), frame_times)
        audio = [tpavi.align_channel(feats) for tpavi in model.tpavi]
    total = out.logits.new_zeros(())
    for tpavi, v, a in zip(model.tpavi, out.visual_inputs, audio):
        theta, phi_a = tpavi.keys(v, a)  # (B, inter, T, h', w'), (B, T, inter)
        m = F.adaptive_avg_pool2d(masks.reshape(b * t, 1, h, w).float(), theta.shape[-2:])
        m = m.reshape(b, t, *theta.shape[-2:])[:, None] * has[:, None, :, None, None]
        vis = (theta * m).sum((2, 3, 4)) / m.sum((2, 3, 4)).clamp_min(1e-6)  # (B, inter)
        frames = has[..., None].to(phi_a.dtype)
        aud = (phi_a * frames).sum(1) / frames.sum(1).clamp_min(1.0)  # (B, inter)
        vis, aud = F.normalize(vis[clips], dim=-1), F.normalize(aud[clips], dim=-1)
        sim = vis @ aud.T / temperature
        if groups is not None:
            g = groups.to(sim.device)[clips]
            alike = (g[:, None] == g[None, :]) & ~torch.eye(
                len(g), dtype=torch.bool, device=g.device
            )
            sim = sim.masked_fill(alike, float("-inf"))
        target = torch.arange(sim.shape[0], device=sim.device)
        total = total + 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))
    return total / len(out.visual_inputs)


def avs_loss(
    out: AVSOutput,
    masks: torch.Tensor,
    labelled: torch.Tensor | None = None,
    avm_weight: float = 0.5,
    pos_weight: float = 1.0,
    frame_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE on labelled frames + ``avm_weight`` x audio-visual matching (+ a frame term).

    masks (B, T, H, W) {0, 1}; labelled (B, T) bool: the frames whose mask counts (single-source
    semi-supervised: the first frame of each clip; multi-source: all).  Returns the loss and
    its parts as floats for logging.  ``pos_weight`` > 1 weighs object pixels up in the BCE
    (1: AVSBench's plain BCE).  ``frame_weight`` > 0 adds a BCE per labelled frame on its
    largest logit against "the frame has a sounding object" (not in AVSBench): the pixel BCE
    is dominated by the easy background, while this term weighs every frame's decision to
    draw a mask at all (which is what J's 0.5 threshold scores) equally.
    """
    logits = out.logits
    if labelled is None:
        labelled = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
    weight = logits.new_tensor(pos_weight)
    target = masks[labelled].to(logits.dtype)  # (n, H, W)
    bce = F.binary_cross_entropy_with_logits(logits[labelled], target, pos_weight=weight)
    avm = audio_visual_matching_loss(out) if avm_weight > 0 else logits.new_zeros(())
    loss = bce + avm_weight * avm
    parts = {"bce": bce.item(), "avm": avm.item()}
    if frame_weight > 0:
        frame = F.binary_cross_entropy_with_logits(
            logits[labelled].amax((-1, -2)), target.amax((-1, -2))
        )
        loss = loss + frame_weight * frame
        parts["frame"] = frame.item()
    return loss, {"loss": loss.item(), **parts}


def labelled_frames(setting: str, batch: int, num_frames: int, device=None) -> torch.Tensor:
    """(batch, T) bool: ``"single"`` labels the first frame only, ``"multi"`` every frame."""
    if setting not in ("single", "multi"):
        raise InputError(f"AVS setting must be 'single' or 'multi', not {setting!r}")
    lab = torch.zeros(batch, num_frames, dtype=torch.bool, device=device)
    if setting == "single":
        lab[:, 0] = True
    else:
        lab[:] = True
    return lab
