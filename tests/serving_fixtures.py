"""A real but small EmpatheticRecommender for the serving tests and the load benchmark, and live servers.

The full artifacts (trained emotion classifier, prepared data) are not in a fresh clone, so the pipeline is built
from what is bundled: the ReDial graph and catalogue, the live linker, an emotion classifier trained for a few
seconds on a slice of the bundled annotations, and popularity fitted on a few hundred ReDial test dialogues.
Building it takes ~10 s (mostly the linker's alias tables): once per process (cached), and pickled once so that
server subprocesses load it in a few seconds instead (`load_pickled_pipeline`, via `ecrs serve --set pipeline=...`).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import httpx
import pytest

from ecrs.data.bundle import bundled
from ecrs.data.catalogue import load_catalogue
from ecrs.data.dialogues import load_redial
from ecrs.data.kg import load_redial_kg, redial_movie_entities, redial_titles
from ecrs.data.linking import build_redial_linker
from ecrs.data.samples import build_samples
from ecrs.inference.pipeline import EmpatheticRecommender
from ecrs.models.baselines import Popularity

TESTS_DIR = Path(__file__).resolve().parent
PIPELINE_ENV = "ECRS_TEST_PIPELINE"  # path of the pickled pipeline, for server subprocesses
POPULARITY_DIALOGUES = 300
EMOTION_EXAMPLES = 1200


def tiny_emotion_classifier():
    """The project's emotion classifier (`ecrs.training.emotion.train_emotion`), trained on the first
    EMOTION_EXAMPLES bundled ReDial annotations with one L2 strength and few iterations: ~3 s, not saved."""
    from ecrs.training.emotion import EmotionConfig, load_examples, train_emotion

    cfg = EmotionConfig(c_grid=[8.0], max_iter=60, refit=False, char_ngrams=[3, 4])
    examples = load_examples(cfg.data)[:EMOTION_EXAMPLES]
    # One BLAS thread: on a busy 2-core machine L-BFGS with a thread pool runs about 8x slower.
    with _one_blas_thread():
        clf, _ = train_emotion(cfg, save=False, examples=examples)
    return clf


def tiny_stance_classifier():
    """The project's stance classifier (`ecrs.training.stance`) fitted on the hand-written people / genre training
    families only (not ReDial's questionnaire): ~1 s, not saved."""
    from ecrs.data.bundle import data_dir
    from ecrs.data.stance import load_people_genres
    from ecrs.training.stance import StanceConfig, fit_stance

    with _one_blas_thread():
        return fit_stance({"people": load_people_genres(data_dir() / "stance/people_genres.jsonl")["train"]},
                          StanceConfig(), c=1.0)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:  # only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(1)


@functools.lru_cache(maxsize=1)
def build_pipeline() -> EmpatheticRecommender:
    kg = load_redial_kg()
    movie_entity, titles = redial_movie_entities(kg), redial_titles()
    dialogues = itertools.islice(load_redial(bundled("redial/test.jsonl.gz"), movie_entity, titles),
                                 POPULARITY_DIALOGUES)
    popularity = Popularity()
    popularity.fit([s for d in dialogues for s in build_samples(d, kg.item_set)], kg)
    return EmpatheticRecommender(kg, load_catalogue(kg), build_redial_linker(kg, chat=True), tiny_emotion_classifier(),
                                 popularity, generator=None, stance=tiny_stance_classifier())


_pickled: dict[str, Path] = {}


def pickled_pipeline_path() -> Path:
    """The cached pipeline pickled to a temporary file (once per process)."""
    if "path" not in _pickled:
        fd, name = tempfile.mkstemp(prefix="ecrs-test-pipeline-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(build_pipeline(), f, protocol=pickle.HIGHEST_PROTOCOL)
        _pickled["path"] = Path(name)
        atexit.register(_pickled["path"].unlink, missing_ok=True)
    return _pickled["path"]


def load_pickled_pipeline() -> EmpatheticRecommender:
    """`ecrs serve --set pipeline=serving_fixtures:load_pickled_pipeline` (with $ECRS_TEST_PIPELINE set)."""
    with open(os.environ[PIPELINE_ENV], "rb") as f:
        return pickle.load(f)


# Test modules import these (`from serving_fixtures import pipeline_fixture`); both are cached per process, so
# every module that imports them shares one pipeline.
@pytest.fixture(scope="session", name="pipeline")
def pipeline_fixture() -> EmpatheticRecommender:
    return build_pipeline()


@pytest.fixture(scope="session", name="pipeline_pickle")
def pipeline_pickle_fixture(pipeline) -> Path:
    return pickled_pipeline_path()


# ---------------------------------------------------------------- live servers on loopback

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`ecrs serve` in a subprocess on a free loopback port, with the pickled test pipeline (or, with
    `pipeline_pickle=None`, the artifacts `extra_args` name: `"--set", "artifacts=DIR"`)."""

    def __init__(self, db_url: str, pipeline_pickle: Path | None, *extra_args: str,
                 env: dict[str, str] | None = None):
        self.db_url, self.pickle, self.extra, self.env = db_url, pipeline_pickle, extra_args, env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in __exit__

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        # no per-client limits unless `extra_args` set them: tests and benchmarks send everything from one address
        cmd = [sys.executable, "-m", "ecrs.cli", "serve", "--set", f"port={self.port}",
               "--set", f"db_url={self.db_url}", "--set", "log_level=warning", "--set", "access_log=false",
               "--set", "rate_per_minute=0", "--set", "sessions_per_hour=0", *self.extra]
        if self.pickle is not None:
            env[PIPELINE_ENV] = str(self.pickle)
            env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])
            cmd += ["--set", "pipeline=serving_fixtures:load_pickled_pipeline"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; only what was committed survives."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.close()


class ThreadServer:
    """uvicorn serving `app` from a thread of this process, on a free loopback port."""

    def __init__(self, app, **config):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on", **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def parse_sse(body: str) -> list[tuple[str, dict]]:
    """`event: x\\ndata: {...}\\n\\n` blocks -> [(event, data)]."""
    import json

    events = []
    for block in body.strip().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        events.append((fields.get("event", "message"), json.loads(fields.get("data", "{}"))))
    return events
