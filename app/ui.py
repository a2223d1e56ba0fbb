"""The Gradio app: ``build_ui(...)`` returns the Blocks, ``launch(...)`` serves it.

Nothing is loaded at import time and nothing lives at module level: the models, the serving
index and the output folder belong to the :class:`~app.service.FoleyService` that ``build_ui``
creates (reachable as ``blocks.foley_service``).  Every action has an ``api_name`` for
``gradio_client``: ``/generate``, ``/check_video``, ``/index_info``, ``/rebuild_index``.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from app.results import GenerateResult
from app.service import MODES, TEXT_HITS, FoleyService, Limits
from foley.errors import FoleyError
from foley.paths import resolved
from foley.pipelines.solvers import SOLVERS

log = logging.getLogger(__name__)

MODE_CHOICES = [
    ("Action-focused: the action sounds, ambience suppressed", "action_focused"),
    ("Ambient-joint: the action sounds in the scene's ambience", "ambient_joint"),
]
assert {v for _, v in MODE_CHOICES} == set(MODES)


def default_examples() -> list[str]:
    """Example clips shipped with the package (``foley/assets/**/examples/*.mp4``)."""
    from importlib.resources import files

    assets = Path(str(files("foley"))) / "assets"
    return [str(p) for p in sorted(assets.glob("**/examples/*.mp4"))] if assets.is_dir() else []


@contextmanager
def _shown_as_message(gr):
    """Any error becomes a one-line message in the UI (gr.Error), never a traceback."""
    from retrieval_index import RetrievalIndexError

    try:
        yield
    except gr.Error:
        raise
    except (FoleyError, RetrievalIndexError) as err:
        raise gr.Error(html.escape(scrub_paths(str(err))), print_exception=False) from None
    except Exception as err:  # noqa: BLE001 - logged here, one line for the user
        log.exception("request failed")
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise gr.Error(
            html.escape(scrub_paths(f"internal error ({type(err).__name__}): {first}")),
            print_exception=False,
        ) from None


_ABSOLUTE_PATH = re.compile(r"(?<![\w.\-])(?:[A-Za-z]:)?[\\/][^\s'\"`,;:()<>]+")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path cut to its last part: no server path reaches a client
    (the file's own name stays, so the message still says which file)."""

    def last(match: re.Match) -> str:
        parts = [q for q in re.split(r"[\\/]", match.group(0)) if q]
        return parts[-1] if parts else match.group(0)

    return _ABSOLUTE_PATH.sub(last, text)


def _fmt_db(value) -> str:
    return "n/a" if value is None else f"{float(value):.1f} dBFS"


def _condition_md(result: GenerateResult) -> str:
    c = result.condition
    if c is None:
        return "No conditioning clip (the model's null condition)."
    if c.id == "uploaded":
        return (
            f"**Conditioned on your clip** `{html.escape(c.narration or '')}`  \n"
            f"ambient level {_fmt_db(c.ambient_db)}"
        )
    score = "" if c.score is None else f", MC3 similarity {c.score:.3f}"
    what = "Retrieved clip's action-only track" if c.track == "action" else "Retrieved clip"
    return (
        f"**{what}** `{html.escape(c.id)}`  \n"
        f"narration: *{html.escape(c.narration or 'n/a')}*  \n"
        f"ambient level {_fmt_db(c.ambient_db)}{score}"
    )


def _heatmap_md(result: GenerateResult) -> str:
    if result.heatmap is None:
        return "No DenseAV model loaded (no denseav/ in the model folder): no heatmap."
    text = (
        f"**DenseAV alignment {result.heatmap.score:.2f}** for the generated soundtrack (0.5: "
        "no better than the same audio shuffled in time). Bright: where the sound comes from."
    )
    if result.own_heatmap is not None:
        text += f" The video's own soundtrack: **{result.own_heatmap.score:.2f}** (lower strip)."
    return text


def _avs_md(result: GenerateResult) -> str:
    if result.avs is None:
        return result.avs_note
    return (
        f"**Alignment score {result.avs.score:.2f}** (0.5: no better than the same audio "
        f"shuffled in time; 1: better than every shuffle). The mask shows the pixels the AVS "
        f"model ties to the generated sound, over the first {result.avs.seconds:.1f} s."
    )


def _search_md(rows: list[dict]) -> str:
    """The text search results as a Markdown table (no paths: narration, score, level)."""
    if not rows:
        return "No clip in the index."
    lines = ["| # | score | ambient | clip | narration |", "| ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        kind = " (audio only)" if r["audio_only"] else ""
        narration = html.escape(r["narration"]).replace("|", "/")
        lines.append(
            f"| {r['rank']} | {r['score']:.3f} | {_fmt_db(r['ambient_db'])} | "
            f"{html.escape(r['id'])} | {narration}{kind} |"
        )
    return "\n".join(lines)


def _index_md(info: dict) -> str:
    lines = []
    if "model_id" in info:
        lines += [
            "| | current index |",
            "| --- | --- |",
            f"| model | `{info['model_id']}` ({info['dim']}-d) |",
            f"| clips | {info['count']} |",
            f"| built | {info['created']} |",
            f"| version | {info['version']} ({info['kind']}) |",
            f"| folder | `{info['folder']}` |",
        ]
    else:
        lines.append(info.get("status", "no index"))
    if info.get("warning"):
        lines.append(f"\n**Warning:** {html.escape(info['warning'])}")
    if info.get("rebuild"):
        lines.append(f"\nLast rebuild: {html.escape(info['rebuild']['message'])}")
    return "\n".join(lines)


def build_ui(
    models,
    index_path: str | os.PathLike | None = None,
    *,
    examples: Sequence[str | os.PathLike] | None = None,
    limits: Limits = Limits(),
    avs=None,
    work_dir: str | os.PathLike | None = None,
    title: str = "Foley",
    audioscope=None,
):
    """The app as ``gr.Blocks``.

    ``models``: a :class:`~app.service.Models`, a ``FoleyPipeline``, a zero-argument callable
    returning either (loaded on first use), or a ready :class:`FoleyService`.  ``index_path``:
    the index to serve and rebuild (default: the pipeline's ``index/``).  ``examples``: video
    paths offered as examples (default: those shipped in ``foley/assets``).  ``audioscope``:
    an AudioScope model (or a zero-argument callable returning one) adds the Separate tab.
    """
    from foley.defaults import set_offline_env

    set_offline_env()
    import gradio as gr

    from foley.pipelines.shaping import MAX_SHAPING  # (torch: not at the app's import time)

    service = (
        models
        if isinstance(models, FoleyService)
        else FoleyService(models, index_path, limits=limits, avs=avs, work_dir=work_dir)
    )
    lim = service.limits
    examples = default_examples() if examples is None else [str(p) for p in examples]
    if service.input_roots is None:  # files only from gradio's upload folder or the examples
        from gradio.utils import get_upload_folder

        service.input_roots = [resolved(p) for p in (get_upload_folder(), *examples)]
    rebuilds = service.rebuild_root is not None

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            f"# {html.escape(title)}\nUpload a silent video of hands at work: the model writes "
            "the action sounds, in sync with the contacts it sees."
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    video_in = gr.Video(
                        label="Silent video", sources=["upload"], elem_id="video-in", height=320
                    )
                    gr.Markdown(f"*{lim.describe()}*", elem_id="limits")
                    video_note = gr.Markdown(elem_id="video-note")
                    mode = gr.Radio(
                        MODE_CHOICES, value="action_focused", label="Mode", elem_id="mode"
                    )
                    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                        # the model's own defaults (few-step solver, shaping), read when the
                        # page loads (callables: the models load on first use)
                        steps = gr.Slider(
                            1, lim.max_steps, value=lambda: service.default_steps, step=1,
                            label="Steps", elem_id="steps",
                        )  # fmt: skip
                        solver = gr.Dropdown(
                            ["model", *SOLVERS], value="model", elem_id="solver",
                            label="Solver (model: the model's own; dpm and unipc: second order, "
                            "one model call per step, for few steps; heun: two calls per step)",
                        )  # fmt: skip
                        # the model's guidance for the mode shown (it follows the mode below)
                        guidance = gr.Slider(
                            0.0, lim.max_guidance, step=0.1, label="Guidance (video)",
                            value=lambda: service.default_guidance("action_focused"),
                            elem_id="guidance",
                        )  # fmt: skip
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        candidates = gr.Slider(
                            1, lim.max_candidates, value=1, step=1, label="Candidates"
                        )
                        shaping = gr.Slider(
                            0.0, MAX_SHAPING, value=lambda: service.default_shaping, step=0.1,
                            label="Sync shaping: loudness follows the contacts seen (0: off; "
                            "models with a sync encoder)",
                            elem_id="sync-shaping",
                        )  # fmt: skip
                        ambient_max = gr.Slider(
                            -90.0, 0.0, value=-45.0, step=1.0,
                            label="Action-focused: retrieve clips with ambience below (dBFS)",
                        )  # fmt: skip
                        condition = gr.Audio(
                            label="Ambient clip to condition on (replaces retrieval)",
                            sources=["upload"],
                            type="filepath",
                        )
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    if examples:
                        gr.Examples([[p] for p in examples], inputs=[video_in], label="Examples")
                with gr.Column(scale=1):
                    out_video = gr.Video(
                        label="Video with the generated audio", elem_id="result", height=320
                    )
                    out_audio = gr.Audio(label="Generated audio", type="filepath", elem_id="audio")
                    spectrogram = gr.Image(
                        label="Spectrogram (green lines: detected onsets)", type="filepath"
                    )
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### Conditioning clip")
                    cond_md = gr.Markdown()
                    cond_audio = gr.Audio(label="Conditioning audio", type="filepath")
                with gr.Column():
                    gr.Markdown("### Sounding object (AVS)")
                    avs_md = gr.Markdown(elem_id="avs-note")
                    overlay_img = gr.Image(label="Mask overlay", type="filepath", elem_id="overlay")
                    overlay_video = gr.Video(label="Mask overlay with the audio", height=320)
                with gr.Column():
                    gr.Markdown("### Where the sound comes from (DenseAV)")
                    heat_md = gr.Markdown(elem_id="denseav-note")
                    heat_img = gr.Image(label="Generated soundtrack", type="filepath")
                    own_img = gr.Image(label="The video's own soundtrack", type="filepath")
            cand_title = gr.Markdown("### Candidates", visible=False)
            cand_audio, cand_img = [], []
            with gr.Row():
                for k in range(lim.max_candidates):
                    with gr.Column(min_width=160):
                        cand_audio.append(
                            gr.Audio(label=f"candidate {k + 1}", type="filepath", visible=False)
                        )
                        cand_img.append(gr.Image(type="filepath", visible=False, show_label=False))
            with gr.Accordion("Details", open=False):
                details = gr.JSON(label="details")

        with gr.Tab("Index"):
            index_md = gr.Markdown(elem_id="index-info")
            index_json = gr.JSON(label="index info")
            refresh_btn = gr.Button("Refresh")
            gr.Markdown(
                "Rebuild from a data folder in Ego4D-Sounds format (`<split>.tsv` and the clips), "
                "given relative to the server's data root: the new version is built in the "
                "background and replaces the current one when complete; generation keeps using "
                "the current one meanwhile."
                if rebuilds
                else "Index rebuilds are off (the server was started without --allow-rebuild)."
            )
            with gr.Row(visible=rebuilds):
                data_dir = gr.Textbox(label="Data folder (under the data root)", placeholder=".")
                split = gr.Textbox(value="train", label="Split")
            rebuild_btn = gr.Button("Rebuild index", visible=rebuilds)
            rebuild_md = gr.Markdown(elem_id="rebuild-status")
            gr.Markdown("### Search the index by text (MC3 text tower)")
            with gr.Row():
                search_text = gr.Textbox(
                    label="Describe a sound", placeholder="footsteps on gravel", max_lines=1
                )
                search_btn = gr.Button("Search", scale=0)
            search_md = gr.Markdown(elem_id="search-results")
            search_audio = [
                gr.Audio(label=f"result {k + 1}", type="filepath", visible=False)
                for k in range(TEXT_HITS)
            ]

        if audioscope is not None:
            from app.separate import add_separate_tab

            add_separate_tab(gr, service, audioscope, _shown_as_message)

        # ---- handlers (closures over this app's service; no module state) ---------------
        def on_check(video):
            if not video:
                return ""
            with _shown_as_message(gr):
                info = service.check_video(video)
            return (
                f"{Path(video).name}: {info.duration:.1f} s, {info.width}x{info.height}, "
                f"{info.fps:.2f} fps"
            )

        def on_generate(
            video, mode_value, steps_v, guidance_v, seed_v, cands_v, cond_v, ambient_v,
            shaping_v=None, solver_v="model", progress=gr.Progress(track_tqdm=True),
        ):  # fmt: skip
            with _shown_as_message(gr):
                result = service.generate(
                    video,
                    mode_value,
                    steps=steps_v,
                    guidance=guidance_v,
                    seed=0 if seed_v is None else seed_v,
                    candidates=cands_v,
                    condition_audio=cond_v,
                    ambient_db_max=ambient_v,
                    sync_shaping=shaping_v if service.has_sync_model else None,  # None: the model's
                    solver=solver_v,
                    progress=lambda f, d: progress(f, desc=d),
                )
            c0, many = result.candidates[0], len(result.candidates) > 1
            outs = [
                result.video_path,
                c0.audio_path,
                c0.spectrogram_path,
                result.details(),
                _condition_md(result),
                result.condition.audio_path if result.condition else None,
                _avs_md(result),
                result.avs.strip_path if result.avs else None,
                result.avs.video_path if result.avs else None,
                gr.update(visible=many),
            ]
            for k in range(lim.max_candidates):
                c = result.candidates[k] if many and k < len(result.candidates) else None
                outs.append(
                    gr.update(
                        value=c.audio_path if c else None,
                        visible=c is not None,
                        label=f"candidate {k + 1} (seed {c.seed})" if c else None,
                    )
                )
            for k in range(lim.max_candidates):
                c = result.candidates[k] if many and k < len(result.candidates) else None
                outs.append(
                    gr.update(value=c.spectrogram_path if c else None, visible=c is not None)
                )
            outs += [  # DenseAV, last: the earlier outputs keep their API positions
                _heatmap_md(result),
                result.heatmap.strip_path if result.heatmap else None,
                result.own_heatmap.strip_path if result.own_heatmap else None,
            ]
            return outs

        def on_index_info():
            with _shown_as_message(gr):
                info = service.index_info()
            return _index_md(info), info

        def on_rebuild(data_value, split_value, progress=gr.Progress()):
            with _shown_as_message(gr):
                job = service.start_rebuild(data_value, split_value or "train")
                progress(0.0, desc="starting")
                while not job.wait(0.25):
                    progress(job.fraction, desc=f"embedding clips {job.done}/{job.total}")
                if job.error:
                    raise FoleyError(job.error)
                info = service.index_info()
            return scrub_paths(job.describe()), _index_md(info), info

        def on_search(text_value):
            with _shown_as_message(gr):
                rows = service.search_text(text_value, TEXT_HITS)
            return [_search_md(rows)] + [
                gr.update(
                    value=rows[k]["audio"] if k < len(rows) else None,
                    visible=k < len(rows) and rows[k]["audio"] is not None,
                    label=f"{k + 1}. {rows[k]['narration']}" if k < len(rows) else None,
                )
                for k in range(TEXT_HITS)
            ]

        generate_outputs = [
            out_video, out_audio, spectrogram, details, cond_md, cond_audio, avs_md,
            overlay_img, overlay_video, cand_title, *cand_audio, *cand_img,
            heat_md, heat_img, own_img,
        ]  # fmt: skip
        video_in.change(
            on_check, video_in, video_note, api_name="check_video", concurrency_limit=None
        )
        mode.change(
            service.default_guidance, mode, guidance, api_name="default_guidance",
            concurrency_limit=None,
        )  # fmt: skip
        generate_btn.click(
            on_generate,
            [
                video_in,
                mode,
                steps,
                guidance,
                seed,
                candidates,
                condition,
                ambient_max,
                shaping,
                solver,
            ],  # fmt: skip
            generate_outputs,
            api_name="generate",
            concurrency_limit=lim.concurrency,
            concurrency_id="generate",
        )
        refresh_btn.click(
            on_index_info, None, [index_md, index_json], api_name="index_info",
            concurrency_limit=None,
        )  # fmt: skip
        rebuild_btn.click(
            on_rebuild, [data_dir, split], [rebuild_md, index_md, index_json],
            api_name="rebuild_index", concurrency_limit=1, concurrency_id="rebuild",
        )  # fmt: skip
        gr.on(
            [search_btn.click, search_text.submit], on_search, search_text,
            [search_md, *search_audio], api_name="search_text",
            concurrency_limit=lim.concurrency, concurrency_id="generate",
        )  # fmt: skip
        demo.load(on_index_info, None, [index_md, index_json], api_visibility="private")

    demo.queue(max_size=lim.queue_size, default_concurrency_limit=lim.concurrency)
    demo.foley_service = service
    return demo


def launch(
    demo,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    block: bool = True,
    quiet: bool = False,
    auth: tuple[str, str] | None = None,
) -> str:
    """Serve ``demo`` (from :func:`build_ui`) on ``host:port``; returns the local URL.

    Binds 127.0.0.1 unless told otherwise; uploads above the service's size limit are refused
    by the server before they reach a handler.  ``auth``: (user, password) for Gradio's login.
    ``block=False`` returns once serving.
    """
    import gradio as gr

    service: FoleyService = demo.foley_service
    theme = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
        max_file_size=int(service.limits.max_upload_mb * 1e6),
        allowed_paths=[str(service.work_dir)],
        theme=theme,
        ssr_mode=False,
        auth=auth,
    )
    return demo.local_url
