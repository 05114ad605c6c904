"""`sora serve` driven by the official `openai` package on 127.0.0.1: the real server process, the real model
(sora-tiny at the smoke preset), the real client."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from sora_cli.video import read_frames

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # OpenAI's own service, not this

KEY = "test-key"
LEFT = "a red circle moving left on a black background"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`sora serve` in its own process; `start` waits until it answers."""

    def __init__(self, data: Path, home: Path, *args: str, key: str | None = KEY):
        self.data, self.port, self.key, self.proc = data, free_port(), key, None
        self.args = ["--data", str(data), "--port", str(self.port), "--preset", "smoke",
                     *(["--api-key", key] if key else []), *args]
        self.env = {**os.environ, "SORA_HOME": str(home)}
        self.cwd = home

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Server:
        self.log = open(self.data.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "sora_cli", "serve", *self.args], cwd=self.cwd,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data.parent / f"serve-{self.port}.log").read_text()
            try:
                httpx.get(f"{self.url}/videos", headers=self.headers(), timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError("sora serve did not start")

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def client(self, **kwargs):
        return openai.OpenAI(base_url=self.url, api_key=self.key or "none", **kwargs)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    (root / "home").mkdir()
    server = Server(root / "data", root / "home", "--max-queue", "20", "--max-upload", "1").start()
    yield server
    server.stop()


def wait_for(client, video_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.1)
    raise TimeoutError(video_id)


def wait_running(client, video_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status == "in_progress" and video.progress > 0:
            return video
        assert video.status in ("queued", "in_progress"), video
        time.sleep(0.05)
    raise TimeoutError(video_id)


def test_create_poll_download(server, tmp_path):
    client = server.client()
    video = client.videos.create_and_poll(prompt=LEFT, seconds="1", size="96x64", extra_body={"seed": 3})
    assert video.status == "completed" and video.progress == 100 and video.error is None, video
    assert (video.seconds, video.size, video.model) == ("1", "96x64", "sora-2")
    path = tmp_path / "v.mp4"
    client.videos.download_content(video.id).write_to_file(path)
    frames = read_frames(path)
    assert frames.shape == (24, 64, 96, 3)
    assert frames[:, :, :, 0].mean() > frames[:, :, :, 2].mean()  # a red shape on black
    for variant in ("thumbnail", "spritesheet"):
        image = Image.open(io.BytesIO(client.videos.download_content(video.id, variant=variant).content))
        image.load()
        assert image.width > 0 and image.height > 0
    thumb = np.asarray(Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").content)))
    assert np.abs(thumb.astype(int) - frames[0]).mean() < 4  # the first frame (JPEG)
    recipe = json.loads((server.data / f"{video.id}.json").read_text())
    assert (recipe["seed"], recipe["frames"], recipe["model"]) == (3, 24, "sora-tiny")
    response = httpx.get(f"{server.url}/videos/{video.id}", headers=server.headers())
    assert response.headers["x-sora-model"] == "sora-tiny"


def test_same_seed_same_video(server):
    client = server.client()
    a, b = (client.videos.create_and_poll(prompt=LEFT, extra_body={"seed": 11, "frames": 8}) for _ in range(2))
    assert np.array_equal(read_frames(server.data / f"{a.id}.mp4"), read_frames(server.data / f"{b.id}.mp4"))


def test_remix_and_extend(server, tmp_path):
    client = server.client()
    source = client.videos.create_and_poll(prompt=LEFT, extra_body={"seed": 5, "frames": 16})
    remix = client.videos.remix(source.id, prompt="a blue circle moving left on a black background",
                                extra_body={"strength": 0.9})
    assert remix.remixed_from_video_id == source.id and remix.status in ("queued", "in_progress")
    source_file = tmp_path / "source.mp4"
    client.videos.download_content(source.id).write_to_file(source_file)
    extension = client.videos.extend(prompt="a red circle moving up on a black background", seconds="1",
                                     video=source_file.open("rb"))
    remix, extension = wait_for(client, remix.id), wait_for(client, extension.id)
    assert remix.status == extension.status == "completed"
    remixed = read_frames(server.data / f"{remix.id}.mp4")
    assert remixed.shape[0] == 16 and remixed[..., 2].mean() > remixed[..., 0].mean()  # now blue
    extended = read_frames(server.data / f"{extension.id}.mp4")
    assert extended.shape[0] == 16 + 24 and extension.seconds == f"{40 / 24:g}"
    assert np.abs(extended[:16].astype(int) - read_frames(source_file)).mean() < 3  # the source, then new frames
    assert json.loads((server.data / f"{extension.id}.json").read_text())["verb"]["verbs"] == ["extend"]
    edit = client.videos.edit(prompt="a green circle moving left on a black background", video=source_file.open("rb"))
    assert wait_for(client, edit.id).status == "completed"


def test_input_reference_is_the_first_keyframe(server, tmp_path):
    image = np.zeros((64, 64, 3), np.uint8)
    image[20:44, 20:44] = (230, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    client = server.client()
    video = client.videos.create(prompt="a red square moving left on a black background",
                                 input_reference=("first.png", buffer.getvalue(), "image/png"),
                                 extra_body={"frames": 16})
    video = wait_for(client, video.id)
    assert video.status == "completed"
    first = read_frames(server.data / f"{video.id}.mp4")[0]
    inside, outside = first[24:40, 24:40].reshape(-1, 3).mean(0), first[:12].reshape(-1, 3).mean(0)
    assert inside[0] > 150 and inside[1] < 100 and outside.max() < 50, (inside, outside)  # the image's red square
    assert json.loads((server.data / f"{video.id}.json").read_text())["verb"]["verbs"] == ["keyframes"]


def test_list_pages_and_delete(server):
    client = server.client()
    made = [client.videos.create(prompt=LEFT, extra_body={"frames": 8}) for _ in range(3)]
    newest = client.videos.list(limit=2, order="desc")
    assert [v.id for v in newest.data] == [made[2].id, made[1].id] and newest.has_more
    after = client.videos.list(limit=1, order="desc", after=made[1].id)
    assert [v.id for v in after.data] == [made[0].id]
    oldest_first = [v.id for v in client.videos.list(order="asc", limit=100).data]
    assert oldest_first.index(made[0].id) < oldest_first.index(made[2].id)
    done = wait_for(client, made[0].id)
    assert done.status == "completed" and (server.data / f"{done.id}.mp4").is_file()
    deleted = client.videos.delete(done.id)
    assert deleted.deleted and deleted.id == done.id
    assert not list(server.data.glob(f"{done.id}*"))
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(done.id)
    for video in made[1:]:
        wait_for(client, video.id)


def test_delete_cancels_a_running_job(server):
    client = server.client()
    long = client.videos.create(prompt=LEFT, extra_body={"frames": 2400})
    after = client.videos.create(prompt=LEFT, extra_body={"frames": 8})
    wait_running(client, long.id)
    client.videos.delete(long.id)
    assert wait_for(client, after.id).status == "completed"  # the worker went on
    assert not list(server.data.glob(f"*{long.id}*")) and not list(server.data.glob(".*part*"))
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(long.id)


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_bad_input(server, tmp_path):
    before = sorted(p.name for p in server.cwd.iterdir())
    uploads = sorted((server.data / "uploads").iterdir())
    url, auth = f"{server.url}/videos", server.headers()
    cases = [
        (dict(content=b"{not json", headers={**auth, "content-type": "application/json"}), 400, None),
        (dict(json={"prompt": LEFT, "model": "gpt-video-9"}), 400, "model"),
        (dict(json={"prompt": LEFT, "seconds": "-4"}), 400, "seconds"),
        (dict(json={"prompt": LEFT, "size": "big"}), 400, "size"),
        (dict(json={"prompt": ""}), 400, "prompt"),
        (dict(json={"prompt": LEFT, "steps": 0}), 400, "steps"),
        (dict(json={"prompt": LEFT, "image": "/etc/passwd"}), 400, "image"),
        (dict(data={"prompt": LEFT}, files={"input_reference": ("x.png", b"not an image", "image/png")}), 400,
         "input_reference"),
        (dict(data={"prompt": LEFT}, files={"input_reference": ("big.png", b"0" * (3 << 19), "image/png")}), 413,
         None),
    ]
    for kwargs, status, param in cases:
        kwargs.setdefault("headers", auth)
        response = httpx.post(url, **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        assert error_of(response)["param"] == param
    for method in ("get", "delete"):
        for bad in ("..%2F..%2Fjobs.sqlite", "video_../x", "../x"):
            response = getattr(httpx, method)(f"{url}/{bad}", headers=auth)
            assert response.status_code == 404, response.text
            error_of(response)
    response = httpx.post(f"{url}/extensions", headers=auth,
                          json={"prompt": LEFT, "seconds": "1", "video": {"id": "../jobs"}})
    assert response.status_code == 404 and error_of(response)["param"] == "video"
    response = httpx.post(f"{url}/extensions", headers=auth, data={"prompt": LEFT, "seconds": "1"},
                          files={"video": ("v.mp4", b"not a video", "video/mp4")})
    assert response.status_code == 400 and error_of(response)["param"] == "video"
    for key in ("wrong", None):
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"} if key else {})
        assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url, api_key="wrong").videos.list()
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        server.client().videos.create(prompt=LEFT, model="sora-3")
    running = server.client().videos.create(prompt=LEFT, extra_body={"frames": 240})
    response = httpx.get(f"{url}/{running.id}/content", headers=auth)
    assert response.status_code == 409 and error_of(response)["code"] == "video_not_ready"
    wait_for(server.client(), running.id)
    assert sorted(p.name for p in server.cwd.iterdir()) == before  # nothing written outside --data
    assert sorted((server.data / "uploads").iterdir()) == uploads  # refused uploads are not kept


def test_concurrent_creates_bounded_queue_and_responsive(server):
    """50 creates from 10 clients at once against --max-queue 20: each 200 or 429, every accepted job completes,
    and a GET answers quickly while the worker renders."""
    accepted, refused, lock = [], [], threading.Lock()

    def client_thread():
        client = server.client(max_retries=0)
        for _ in range(5):
            try:
                video = client.videos.create(prompt=LEFT, extra_body={"frames": 8})
                with lock:
                    accepted.append(video.id)
            except openai.RateLimitError as exc:
                assert exc.status_code == 429 and exc.body["code"] == "queue_full"
                with lock:
                    refused.append(exc)

    threads = [threading.Thread(target=client_thread) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) + len(refused) == 50 and len(accepted) >= 20 and refused
    latencies, client = [], server.client()
    pending = set(accepted)
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for video_id in list(pending):
            started = time.perf_counter()
            video = client.videos.retrieve(video_id)
            if video.status == "in_progress":
                latencies.append(time.perf_counter() - started)
            if video.status in ("completed", "failed"):
                assert video.status == "completed", video
                pending.discard(video_id)
        time.sleep(0.05)
    assert not pending
    print(f"\nload: {len(accepted)} accepted, {len(refused)} answered 429, GET while rendering: "
          f"max {max(latencies) * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms "
          f"over {len(latencies)} GETs")
    assert latencies and max(latencies) < 0.2


def test_kill_9_and_restart_loses_nothing(tmp_path):
    (tmp_path / "home").mkdir()
    server = Server(tmp_path / "data", tmp_path / "home").start()
    try:
        client = server.client()
        finished = client.videos.create_and_poll(prompt=LEFT, extra_body={"frames": 8, "seed": 9})
        running = client.videos.create(prompt=LEFT, extra_body={"frames": 480, "seed": 1})
        queued = [client.videos.create(prompt=LEFT, extra_body={"frames": 8 * (i + 1), "seed": i}) for i in range(3)]
        wait_running(client, running.id)
        server.kill()
        assert not (server.data / f"{running.id}.mp4").exists()
        server.start()
        for video, frames in [(running, 480), *((v, 8 * (i + 1)) for i, v in enumerate(queued))]:
            done = wait_for(client, video.id, timeout=300)
            assert done.status == "completed", done
            assert read_frames(server.data / f"{video.id}.mp4").shape[0] == frames
        kept = tmp_path / "kept.mp4"
        client.videos.download_content(finished.id).write_to_file(kept)  # still downloadable
        assert read_frames(kept).shape[0] == 8
    finally:
        server.stop()
    rows = [json.loads(line) for line in (server.data / "manifest.jsonl").read_text().splitlines()]
    outputs = [r["output"] for r in rows if r.get("type") == "row" and r["status"] == "done"]
    assert sorted(outputs) == sorted(f"{v.id}.mp4" for v in [finished, running, *queued])  # each once
    assert not list(server.data.glob(".*part*")) and not list(server.data.glob(".*.tmp"))


def test_gallery_works_on_the_data_folder(server):
    client = server.client()
    client.videos.create_and_poll(prompt=LEFT, extra_body={"frames": 8})
    result = subprocess.run([sys.executable, "-m", "sora_cli", "gallery", str(server.data)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    page = (server.data / "index.html").read_text()
    assert all(f"{v.id}.mp4" in page for v in client.videos.list(limit=100).data if v.status == "completed")


def test_non_local_host_needs_a_key(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sora_cli", "serve", "--host", "0.0.0.0", "--data",
                             str(tmp_path / "d")], capture_output=True, text=True, env={**os.environ,
                                                                                       "SORA_API_KEY": ""})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "API key" in result.stderr
    assert not (tmp_path / "d").exists()


def test_an_open_model_takes_input_reference_as_its_first_frame(tmp_path, first_frame):
    """A diffusers image-to-video checkpoint (tiny Wan 2.1 I2V): input_reference is its first frame, and a
    text-only request is refused before it is queued."""
    from tests import tiny_checkpoints

    folder = tiny_checkpoints.wan_i2v(tmp_path / "wan-i2v")
    (tmp_path / "home").mkdir()
    server = Server(tmp_path / "data", tmp_path / "home", "--model", str(folder), "--width", "32", "--height", "32",
                    "--frames", "9", "--steps", "2", "--fps", "16").start()
    try:
        client = server.client()
        with pytest.raises(openai.BadRequestError, match="image-to-video"):
            client.videos.create(prompt="a cat surfing")
        video = client.videos.create(prompt="a cat surfing", input_reference=first_frame.open("rb"),
                                     model=str(folder), extra_body={"seed": 3})
        video = wait_for(client, video.id)
        assert video.status == "completed", video
        recipe = json.loads((server.data / f"{video.id}.json").read_text())
        assert recipe["image"].endswith(f"uploads/{video.id}-reference.png") and recipe["seed"] == 3
        assert read_frames(server.data / f"{video.id}.mp4").shape == (9, 32, 32, 3)
    finally:
        server.stop()
