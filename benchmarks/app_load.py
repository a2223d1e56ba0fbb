"""The app under load: N concurrent gradio_client clients against ``foley app`` on 127.0.0.1.

Starts ``foley app`` in a subprocess (loopback only), then N client threads each send up to
``--requests`` generations (alternating ambient_joint / action_focused, bounded by
``--max-minutes`` overall) through the app's queue, whose concurrency limit is ``--concurrency``.
Prints requests served, failures (must be 0), p50/p95/max latency, throughput and the server
process's peak resident memory (sampled with psutil every 0.1 s).

Without ``--model`` a tiny random-weight model (the test fixtures': real components, 1 s clips,
32 x 32 frames) with a FoleyWorld index is built in a temporary folder: it measures the serving
machinery (queue, uploads, decoding, AVS overlay, encoding), not a big model.

    python -m benchmarks.app_load --quick                    # 4 clients x 3 requests
    python -m benchmarks.app_load --clients 8 --requests 10  # the figures in docs/BENCHMARKS.md
    python -m benchmarks.app_load --model runs/pipeline --steps 25 --clients 4
    python -m benchmarks.app_load --clients 4 --requests 10 --bad-client   # issue 17's figures

``--bad-client``: client 0 sends only bad inputs (a text file named .mp4, a 3000 fps video, a
PNG named .mp4, a file reference to a server path); each must be refused with a message, and
the other clients' requests must all be served.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(root: Path) -> tuple[Path, Path]:
    """A tiny saved model folder (+ AVS, + index of a FoleyWorld split) and a 2 s clip."""
    sys.path.insert(0, str(REPO))
    from tests.app_fixtures import write_clip, write_data, write_model_dir

    data = write_data(root / "data", videos=4, clips_per_video=2)
    return write_model_dir(root / "model", data), write_clip(root / "clip.mp4", seconds=2.0)


def start_server(model: Path, port: int, args) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "foley.cli.main", "app", "--model", str(model), "--port", str(port),
        "--host", "127.0.0.1", "--concurrency", str(args.concurrency), "--max-seconds", "30",
    ]  # fmt: skip
    if args.device:
        cmd += ["--device", args.device]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"foley app exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("foley app did not start within 300 s")


class PeakMemory(threading.Thread):
    """Samples the RSS of a process (and its children) until stopped; ``peak`` in bytes."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc, self.every_s, self.peak = psutil.Process(pid), every_s, 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            self.stop.wait(self.every_s)


def client_loop(url: str, clip: Path, args, worker: int, out: list, stop_at: float) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="foley-load-"))
    for i in range(args.requests):
        if time.time() > stop_at:
            out.append({"worker": worker, "skipped": True})
            continue
        mode = ("ambient_joint", "action_focused")[(worker + i) % 2]
        start = time.perf_counter()
        try:
            job = client.submit(
                handle_file(str(clip)), mode, args.steps, 2.0, worker * 1000 + i, 1, None, -10.0,
                api_name="/generate",
            )  # fmt: skip
            details = job.result(timeout=args.request_timeout)[3]
            ok = abs(details["seconds"] - 2.0) < 0.1
            error = None if ok else f"wrong length {details['seconds']}"
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported
            ok, error = False, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        out.append(
            {"worker": worker, "ok": ok, "error": error, "latency": time.perf_counter() - start}
        )


def bad_inputs(root: Path) -> list:
    """What the bad client sends: upload paths, or ("ref", server path) for a raw reference."""
    sys.path.insert(0, str(REPO))
    from PIL import Image

    from foley.io import write_video

    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.mp4").write_text("not a video\n" * 100)
    frames = np.random.default_rng(0).integers(0, 255, (300, 64, 64, 3), dtype=np.uint8)
    write_video(root / "x3000.mp4", frames, 3000.0)
    Image.fromarray(frames[0]).save(root / "still.png")
    (root / "still.png").rename(root / "still.mp4")
    secret = root / "secret.txt"
    secret.write_text("server-only\n")
    return [root / "notes.mp4", root / "x3000.mp4", root / "still.mp4", ("ref", secret)]


def bad_loop(url: str, bad: list, args, out: list, stop_at: float) -> None:
    """Client 0 with ``--bad-client``: every request is bad and must come back refused."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="foley-load-"))
    for i in range(args.requests):
        if time.time() > stop_at:
            break
        item = bad[i % len(bad)]
        start = time.perf_counter()
        try:
            if isinstance(item, tuple):  # a raw file reference to a server path
                body = json.dumps({"data": [
                    {"path": str(item[1]), "meta": {"_type": "gradio.FileData"}},
                    "ambient_joint", args.steps, 2.0, 0, 1, None, -10.0, 1.0,
                ]}).encode()  # fmt: skip
                req = urllib.request.Request(
                    f"{url}gradio_api/call/generate", body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=60) as r:
                    event = json.loads(r.read())["event_id"]
                with urllib.request.urlopen(f"{url}gradio_api/call/generate/{event}") as r:
                    text = r.read().decode()
                refused = "event: error" in text and str(item[1].parent) not in text
            else:
                client.predict(
                    handle_file(str(item)), "ambient_joint", args.steps, 2.0, 0, 1, None, -10.0,
                    api_name="/generate",
                )  # fmt: skip
                refused = False
        except Exception:  # noqa: BLE001 - the expected answer: a one-line error
            refused = True
        out.append({"bad": True, "refused": refused, "latency": time.perf_counter() - start})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 clients x 3 requests")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--concurrency", type=int, default=2, help="app queue concurrency")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps per request")
    parser.add_argument("--model", help="saved pipeline folder (default: a tiny random one)")
    parser.add_argument("--clip", help="video to send (default: a generated 2 s clip)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="stop sending after")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--bad-client", action="store_true", help="client 0 sends only bad inputs throughout"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests = 4, 3

    with tempfile.TemporaryDirectory(prefix="foley-app-load-") as tmp:
        if args.model:
            model, clip = Path(args.model), Path(args.clip or "")
            if not clip.is_file():
                raise SystemExit("--clip is required with --model")
        else:
            model, clip = tiny_model(Path(tmp))
            clip = Path(args.clip) if args.clip else clip
        port = free_port()
        server = start_server(model, port, args)
        url = f"http://127.0.0.1:{port}/"
        memory = PeakMemory(server.pid)
        memory.start()
        results: list[dict] = []
        try:
            started = time.perf_counter()
            stop_at = time.time() + 60 * args.max_minutes
            first = 1 if args.bad_client else 0
            threads = [
                threading.Thread(target=client_loop, args=(url, clip, args, w, results, stop_at))
                for w in range(first, args.clients)
            ]
            if args.bad_client:
                bad = bad_inputs(Path(tmp) / "bad")
                threads.append(
                    threading.Thread(target=bad_loop, args=(url, bad, args, results, stop_at))
                )
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            # the app still answers after the load
            with urllib.request.urlopen(f"{url}config", timeout=10) as r:
                alive = r.status == 200
        finally:
            memory.stop.set()
            memory.join()
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    bad = [r for r in results if r.get("bad")]
    results = [r for r in results if not r.get("bad")]
    done = [r for r in results if not r.get("skipped")]
    latencies = np.array([r["latency"] for r in done if r["ok"]])
    failures = [r["error"] for r in done if not r["ok"]]
    figures = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "concurrency": args.concurrency,
        "steps": args.steps,
        "served": int(len(latencies)),
        "failures": len(failures),
        "skipped": len(results) - len(done),
        "p50_s": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
        "p95_s": round(float(np.percentile(latencies, 95)), 2) if len(latencies) else None,
        "max_s": round(float(latencies.max()), 2) if len(latencies) else None,
        "wall_s": round(wall, 1),
        "throughput_per_min": round(60 * len(latencies) / wall, 1),
        "server_peak_rss_mb": round(memory.peak / 2**20),
        "bad_sent": len(bad),
        "bad_refused": sum(r["refused"] for r in bad),
        "alive_after": alive,
    }
    print(json.dumps(figures, indent=2))
    for error in sorted(set(failures))[:5]:
        print(f"failure: {error}", file=sys.stderr)
    print(
        "\n| clients x requests | concurrency | steps | served | failures | p50 | p95 | max "
        "| throughput | server peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {args.clients} x {args.requests} | {args.concurrency} | {args.steps} "
        f"| {figures['served']} | {figures['failures']} | {figures['p50_s']} s "
        f"| {figures['p95_s']} s | {figures['max_s']} s | {figures['throughput_per_min']}/min "
        f"| {figures['server_peak_rss_mb']} MB |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    bad_ok = figures["bad_refused"] == figures["bad_sent"]
    return 0 if not failures and alive and figures["served"] and bad_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
