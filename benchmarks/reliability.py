"""Reliability benchmark (issue 26): does `ecrs serve` stay up against what a public deployment meets?

    .venv/bin/python benchmarks/reliability.py [--phases slow,long,busy,keys,faults,kill,fuzz] [--fuzz-cases 10000]

with OMP_WAIT_POLICY unset (the busy phase decodes replies with llama.cpp). Every phase runs `ecrs serve` in its
own process (tests/serving_fixtures.py ServerProcess) and measures it from outside, over HTTP on loopback:
  slow    2,000 connections that never finish a request (half idle, half sending a header line every 2 s,
          reopened when closed), from one address (127.0.0.2) and then spread over 40 (127.0.1.x, 50 each);
          meanwhile a normal client (127.0.0.1) sends recommendation-only turns: their p95, the server's open files
          (peak), and its log growth (access log and info level on)
  long    one session of 500 entity-heavy turns: turn p50 of the first 20 vs the last 20, bytes of the largest
          history page
  busy    full-reply turns quiet, then with another process spinning one core, at llm_threads 1 (the default)
          and 2; then a burst of 40 turns at once against max_queued_turns=8: 503s with Retry-After, peak queue
  keys    200 wrong keys from one client in a minute: the share refused with 429 after the first 20; `ecrs serve`
          with an empty and a short ECRS_API_KEY: refused at start-up
  faults  SQLite on a 24 MB tmpfs that fills up, and PostgreSQL switched read-only: /health's status and time,
          a turn's status and content type, and both again after the fault is cleared (no restart)
  kill    10 cycles: SIGKILL mid-turn, restart, the client retries every unacknowledged message with its
          Idempotency-Key: acknowledged turns lost, turns stored twice
  fuzz    schemathesis over the OpenAPI schema, strings drawn with NUL bytes, control characters and 5,000-char
          runs added, on SQLite and on PostgreSQL: cases sent, 5xx answers
Pipeline: the real artifacts (template replies except in `busy`) when artifacts/emotion exists, else the test
pipeline. Writes benchmarks/results/reliability.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil

from ecrs.data.bundle import REPO_ROOT
from ecrs.evaluation.results import write_results

sys.path.insert(0, str(REPO_ROOT / "tests"))
from serving_fixtures import ServerProcess, parse_sse, pickled_pipeline_path

RESULTS = Path("benchmarks/results/reliability.json")
BARS = {"slow_p95_s": ("<=", 1.0), "slow_log_growth_mb": ("<=", 1.0), "long_p50_ratio": ("<=", 2.0),
        "long_page_kb": ("<=", 100.0), "busy_p50_ratio": ("<=", 3.0), "wrong_keys_429_share": (">=", 0.90),
        "fuzz_5xx": ("<=", 0), "kill_lost": ("<=", 0), "kill_duplicated": ("<=", 0), "health_503_s": ("<=", 1.0)}
HEAVY = ["I loved Titanic, The Godfather, Inception and Toy Story, anything with Tom Hanks or Meryl Streep?",
         "not a fan of Adam Sandler or Jim Carrey, but Forrest Gump and The Matrix were great, something like Alien?",
         "I've seen Jurassic Park, Jaws, E.T. and Back to the Future, maybe a Steven Spielberg drama?",
         "a comedy with Bill Murray like Groundhog Day, Ghostbusters or Lost in Translation"]
ARTIFACTS = Path("artifacts")
REAL = (ARTIFACTS / "emotion").exists() and (ARTIFACTS / "data" / "redial").exists()


def server(db: str, *args: str, real: bool = REAL, env: dict[str, str] | None = None) -> ServerProcess:
    if real:
        return ServerProcess(db, None, "--set", f"artifacts={ARTIFACTS}", *args, env=env)
    return ServerProcess(db, pickled_pipeline_path(), *args, env=env)


def pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0], 4)


def log_size(s: ServerProcess) -> int:
    return os.fstat(s.log.fileno()).st_size


# ---------------------------------------------------------------- slow connections

ATTACKER = r"""
import asyncio, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n, sources, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), float(sys.argv[4])
opened = 0
async def one(i):
    global opened
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(sources[i % len(sources)], 0))
        except OSError:
            await asyncio.sleep(1); continue
        opened += 1
        try:
            if i % 2:  # trickle: a header line every 2 s, never the blank line that ends the headers
                w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                while time.monotonic() < end and not r.at_eof():
                    w.write(b"X-a: b\r\n"); await w.drain(); await asyncio.sleep(2)
            else:  # idle: wait for the server to close
                await asyncio.wait_for(r.read(), timeout=max(0.1, end - time.monotonic()))
        except (OSError, asyncio.TimeoutError):
            pass
        w.close()
        await asyncio.sleep(0.5)
async def main():
    await asyncio.gather(*(one(i) for i in range(n)))
    print(opened)
asyncio.run(main())
"""


async def normal_turns(url: str, seconds: float) -> tuple[list[float], int]:
    times, errors = [], 0
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        sid = (await c.post("/sessions")).json()["id"]
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                r = await c.post(f"/sessions/{sid}/messages", json={"text": HEAVY[i % 4], "reply": False})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            times.append(time.perf_counter() - t0)
            errors += not ok
            i += 1
            if i % 400 == 0:
                sid = (await c.post("/sessions")).json()["id"]
            await asyncio.sleep(0.2)
    return times, errors


def phase_slow(tmp: str) -> dict:
    out = {}
    with server(f"sqlite:///{tmp}/slow.db", "--set", "log_level=info", "--set", "access_log=true") as s:
        proc = psutil.Process(s.proc.pid)
        for name, sources in [("one_address", ["127.0.0.2"]),
                              ("40_addresses", [f"127.0.1.{i}" for i in range(1, 41)])]:
            log0, fds = log_size(s), [proc.num_fds()]
            attack = subprocess.Popen([sys.executable, "-c", ATTACKER, str(s.port), "2000", ",".join(sources), "40"],
                                      stdout=subprocess.PIPE, text=True)
            time.sleep(5)  # the connections are open
            result: dict = {}

            def sample() -> None:
                while attack.poll() is None:
                    fds.append(proc.num_fds())
                    time.sleep(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            times, errors = asyncio.run(normal_turns(s.url, 30))
            opened = int((attack.communicate()[0] or "0").strip() or 0)
            sampler.join()
            result = {"normal_turns": len(times), "errors": errors, "p50_s": pct(times, 50), "p95_s": pct(times, 95),
                      "attacker_connections_opened": opened, "server_open_files_peak": max(fds),
                      "log_growth_mb": round((log_size(s) - log0) / 2**20, 3)}
            print(f"slow/{name}: {result}", flush=True)
            out[name] = result
    return out


# ---------------------------------------------------------------- a long session

def phase_long(tmp: str) -> dict:
    with server(f"sqlite:///{tmp}/long.db", "--set", "generator=template") as s, \
            httpx.Client(base_url=s.url, timeout=30) as c:
        fresh = []
        for _ in range(20):  # fresh sessions: each one turn old
            sid = c.post("/sessions").json()["id"]
            t0 = time.perf_counter()
            assert c.post(f"/sessions/{sid}/messages", json={"text": HEAVY[0], "reply": False}).status_code == 200
            fresh.append(time.perf_counter() - t0)
        sid, times = c.post("/sessions").json()["id"], []
        for i in range(500):
            t0 = time.perf_counter()
            r = c.post(f"/sessions/{sid}/messages", json={"text": HEAVY[i % 4] + f" ({i})", "reply": False})
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        refused = c.post(f"/sessions/{sid}/messages", json={"text": "one more", "reply": False}).status_code
        pages, before = [], None
        while True:
            r = c.get(f"/sessions/{sid}", params={} if before is None else {"before": before})
            pages.append(len(r.content))
            before = r.json()["next_before"]
            if before is None:
                break
    out = {"fresh_p50_s": pct(fresh, 50), "turns_1_20_p50_s": pct(times[:20], 50),
           "turns_481_500_p50_s": pct(times[-20:], 50),
           "p50_ratio_last_vs_fresh": round(pct(times[-20:], 50) / pct(fresh, 50), 2),
           "turn_501_status": refused, "pages": len(pages), "largest_page_kb": round(max(pages) / 1024, 1)}
    print(f"long: {out}", flush=True)
    return out


# ---------------------------------------------------------------- busy core, bounded queue

def full_turns(url: str, n: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=120) as c:
        sid = c.post("/sessions").json()["id"]
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post(f"/sessions/{sid}/messages", json={"text": HEAVY[i % 4]})
            assert r.status_code == 200, r.text
            times.append(time.perf_counter() - t0)
    return times


async def burst(url: str, n: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        sids = [(await c.post("/sessions")).json()["id"] for _ in range(n)]
        peak = 0

        async def poll() -> None:
            nonlocal peak
            while True:
                peak = max(peak, (await c.get("/health")).json()["queued_turns"])
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(poll())
        rs = await asyncio.gather(*(c.post(f"/sessions/{sid}/messages", json={"text": HEAVY[i % 4]})
                                    for i, sid in enumerate(sids)))
        watcher.cancel()
    busy = [r for r in rs if r.status_code == 503]
    return {"turns": n, "ok": sum(r.status_code == 200 for r in rs), "503": len(busy),
            "503_with_retry_after": sum("retry-after" in r.headers for r in busy),
            "other": sum(r.status_code not in (200, 503) for r in rs), "peak_queued": peak}


def phase_busy(tmp: str, generator: str | None, n: int = 8) -> dict:
    out: dict = {}
    gen = ["--set", f"generator={generator}"] if generator else []
    for threads in (1, 2):
        with server(f"sqlite:///{tmp}/busy{threads}.db", "--set", f"llm_threads={threads}",
                    "--set", "max_queued_turns=8", *gen) as s:
            name = httpx.get(s.url + "/health").json()["parts"]["generator"]
            full_turns(s.url, 2)  # warm-up
            quiet = full_turns(s.url, n)
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                busy = full_turns(s.url, n)
            finally:
                spinner.kill()
                spinner.wait()
            row = {"generator": name, "quiet_p50_s": pct(quiet, 50), "busy_p50_s": pct(busy, 50),
                   "ratio": round(pct(busy, 50) / pct(quiet, 50), 2)}
            if threads == 1:
                row["burst_40"] = asyncio.run(burst(s.url, 40))
            out[f"llm_threads_{threads}"] = row
            print(f"busy/threads={threads}: {row}", flush=True)
    return out


# ---------------------------------------------------------------- keys

def phase_keys(tmp: str) -> dict:
    key = uuid.uuid4().hex
    with server(f"sqlite:///{tmp}/keys.db", "--set", "auth_failures_per_minute=20", real=False,
                env={"ECRS_API_KEY": key}) as s, httpx.Client(base_url=s.url) as c:
        codes = [c.post("/sessions", headers={"X-API-Key": f"guess-{i:04d}-{'x' * 12}"}).status_code
                 for i in range(200)]
    after = codes[20:]
    start = {}
    for name, value in [("empty", ""), ("short", "abc123")]:
        p = subprocess.run([sys.executable, "-m", "ecrs.cli", "serve", "--set", f"db_url=sqlite:///{tmp}/k.db"],
                           env={**os.environ, "ECRS_API_KEY": value}, capture_output=True, text=True, timeout=60)
        start[name] = {"exit": p.returncode, "stderr": p.stderr.strip().splitlines()[-1][:160]}
    out = {"wrong_keys": len(codes), "first_20": {str(k): codes[:20].count(k) for k in set(codes[:20])},
           "after_20_429_share": round(after.count(429) / len(after), 3), "start_up": start}
    print(f"keys: {out}", flush=True)
    return out


# ---------------------------------------------------------------- database faults

def _probe(url: str, sid: str) -> dict:
    t0 = time.perf_counter()
    h = httpx.get(url + "/health", timeout=10)
    health_s = time.perf_counter() - t0
    r = httpx.post(f"{url}/sessions/{sid}/messages", json={"text": HEAVY[1], "reply": False}, timeout=30)
    return {"health": h.status_code, "health_s": round(health_s, 3), "turn": r.status_code,
            "turn_type": r.headers.get("content-type", ""), "turn_detail": str(r.json().get("detail", ""))[:120]
            if r.headers.get("content-type", "").startswith("application/json") and r.status_code != 200 else ""}


def phase_faults(tmp: str) -> dict:
    out = {}
    mnt = Path(tmp) / "tmpfs"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)]).returncode == 0
    if mounted:
        try:
            with server(f"sqlite:///{mnt}/s.db", real=False) as s:
                sid = httpx.post(s.url + "/sessions").json()["id"]
                before = _probe(s.url, sid)
                filler = mnt / "filler"
                subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"], capture_output=True)
                during = [_probe(s.url, sid) for _ in range(3)]
                filler.unlink()
                after = _probe(s.url, sid)
            out["sqlite_full_disk"] = {"before": before, "during": during, "after_clearing": after}
        finally:
            subprocess.run(["umount", "-l", str(mnt)])
    else:
        out["sqlite_full_disk"] = "skipped: cannot mount a tmpfs here (needs root)"
    out["postgres_read_only"] = _postgres_read_only()
    print(f"faults: {json.dumps(out)[:1500]}", flush=True)
    return out


def _postgres_read_only() -> dict | str:
    from pg_fixture import PgCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        return "skipped: no PostgreSQL binaries"
    cluster = PgCluster(bin_dir)
    cluster.start()
    try:
        url = cluster.url(cluster.create_database())

        def psql(sql: str) -> None:
            import psycopg

            with psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres",
                                 autocommit=True) as conn:
                conn.execute("SET default_transaction_read_only = off")  # this admin session may always write
                conn.execute(sql)

        with server(url, real=False) as s:
            sid = httpx.post(s.url + "/sessions").json()["id"]
            before = _probe(s.url, sid)
            # a database switched read-only (a failover to a replica, an operator's guard): new transactions refuse
            # writes; existing connections are cut so the setting applies to every one
            psql("ALTER SYSTEM SET default_transaction_read_only = on")
            psql("SELECT pg_reload_conf()")
            psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                 "AND datname IS NOT NULL")
            during = [_probe(s.url, sid) for _ in range(3)]
            psql("ALTER SYSTEM SET default_transaction_read_only = off")
            psql("SELECT pg_reload_conf()")
            after = _probe(s.url, sid)
        return {"before": before, "during": during, "after_clearing": after}
    finally:
        cluster.stop()


# ---------------------------------------------------------------- kill -9 with idempotent retries

def phase_kill(tmp: str, cycles: int = 10) -> dict:
    db = f"sqlite:///{tmp}/kill.db"
    messages = [(uuid.uuid4().hex, HEAVY[i % 4] + f" #{i}") for i in range(400)]
    acked: dict[str, int] = {}  # idempotency key -> turn index the client was told
    sid, pos, kills, retries = None, 0, 0, 0
    for _ in range(cycles):
        with server(db, real=False) as s:
            if sid is None:
                sid = httpx.post(s.url + "/sessions").json()["id"]
            stop = threading.Event()

            def chat() -> None:
                nonlocal pos, retries
                with httpx.Client(base_url=s.url, timeout=20) as c:
                    while not stop.is_set() and pos < len(messages):
                        key, text = messages[pos]
                        try:
                            if pos % 2:
                                events = parse_sse(c.post(f"/sessions/{sid}/messages/stream", json={"text": text},
                                                          headers={"Idempotency-Key": key}).text)
                                if not events or events[-1][0] != "done":
                                    return
                                acked[key] = events[-1][1]["turn"]
                            else:
                                r = c.post(f"/sessions/{sid}/messages", json={"text": text, "reply": False},
                                           headers={"Idempotency-Key": key})
                                if r.status_code != 200:
                                    return
                                acked[key] = r.json()["turn"]
                        except (httpx.HTTPError, json.JSONDecodeError, IndexError):
                            retries += 1
                            return  # killed mid-request: the same message is retried, same key, after restart
                        pos += 1

            t = threading.Thread(target=chat)
            t.start()
            time.sleep(1.0 + 0.37 * kills)
            s.kill()
            kills += 1
            stop.set()
            t.join(timeout=30)
    with server(db, real=False) as s:
        turns, before = [], None
        while True:
            page = httpx.get(f"{s.url}/sessions/{sid}", params={} if before is None else {"before": before}).json()
            turns = page["turns"] + turns
            before = page["next_before"]
            if before is None:
                break
    texts = [t["user_text"] for t in turns]
    by_text = {text: key for key, text in messages}
    stored = {by_text[t]: i for i, t in zip([t["turn"] for t in turns], texts, strict=True)}
    out = {"kills": kills, "messages_sent": pos, "retried_after_a_kill": retries, "acknowledged": len(acked), "stored_turns": len(turns),
           "acknowledged_lost": sum(1 for k in acked if k not in stored),
           "acknowledged_wrong_turn": sum(1 for k, i in acked.items() if stored.get(k, i) != i),
           "stored_twice": len(texts) - len(set(texts))}
    print(f"kill: {out}", flush=True)
    return out


# ---------------------------------------------------------------- fuzz

def phase_fuzz(tmp: str, cases: int) -> dict:
    import schemathesis
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from pg_fixture import PgCluster, find_pg_bin
    from serving_fixtures import build_pipeline

    from ecrs.serving.app import ServeSettings, create_app

    # what fuzzers of a text API should try beside schemathesis's own strings: NUL and other control characters,
    # lone surrogates, very long runs; each case's message text and session id are also drawn from these
    nasty = st.sampled_from(["\x00", "a\x00b", "\x01\x02\x1b[31m", "\ud800", "\u202e", "x" * 5000, "\x00" * 300])
    pipeline = build_pipeline()
    out = {}
    dbs = {"sqlite": f"sqlite:///{tmp}/fuzz.db"}
    cluster = None
    if (bin_dir := find_pg_bin()) is not None:
        cluster = PgCluster(bin_dir)
        cluster.start()
        dbs["postgresql"] = cluster.url(cluster.create_database())
    try:
        for name, url in dbs.items():
            app = create_app(lambda: pipeline, ServeSettings(db_url=url, rate_per_minute=0, sessions_per_hour=0))
            sent, fivexx, codes = 0, [], {}
            with TestClient(app, raise_server_exceptions=False) as client:
                sid = client.post("/sessions").json()["id"]
                schema = schemathesis.openapi.from_asgi("/openapi.json", app)
                ops = [r.ok() for r in schema.get_all_operations()]
                per_op = max(1, cases // (2 * len(ops)))

                def send(case) -> None:
                    nonlocal sent
                    try:
                        r = case.call()
                    except (UnicodeEncodeError, httpx.InvalidURL):  # the client cannot even send it
                        return
                    sent += 1
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    if r.status_code >= 500:
                        fivexx.append([case.method, case.formatted_path, repr(case.body)[:200], r.text[:200]])

                for op in ops:
                    @given(case=op.as_strategy(), text=st.one_of(st.text(max_size=50), nasty))
                    @settings(max_examples=per_op, deadline=None, database=None,
                              suppress_health_check=list(HealthCheck))
                    def check(case, text) -> None:
                        if isinstance(case.body, dict) and "text" in case.body:
                            case.body["text"] = text  # the message field gets the nasty strings too
                        send(case)
                        if "session_id" in (case.path_parameters or {}):
                            case.path_parameters["session_id"] = sid
                            send(case)
                            case.path_parameters["session_id"] = text  # and the id itself
                            send(case)

                    check()
            out[name] = {"cases_sent": sent, "5xx": len(fivexx), "statuses": dict(sorted(codes.items())),
                         "first_5xx": fivexx[:5]}
            print(f"fuzz/{name}: {out[name]}", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default="slow,long,busy,keys,faults,kill,fuzz")
    ap.add_argument("--fuzz-cases", type=int, default=10_000)
    ap.add_argument("--generator", default=None, help="the busy phase's reply model (default: the server's)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if os.environ.get("OMP_WAIT_POLICY"):
        sys.exit("unset OMP_WAIT_POLICY first: it slows llama.cpp ~3x")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    old = json.loads(Path(args.out).read_text()).get("metrics", {}) if Path(args.out).exists() else {}
    results = dict(old.get("phases", {}))
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        phases = {"slow": lambda: phase_slow(tmp), "long": lambda: phase_long(tmp),
                  "busy": lambda: phase_busy(tmp, args.generator), "keys": lambda: phase_keys(tmp),
                  "faults": lambda: phase_faults(tmp), "kill": lambda: phase_kill(tmp),
                  "fuzz": lambda: phase_fuzz(tmp, args.fuzz_cases)}
        if unknown := set(args.phases.split(",")) - set(phases):
            sys.exit(f"unknown phases {sorted(unknown)}; known: {', '.join(phases)}")
        for phase in args.phases.split(","):
            t0 = time.perf_counter()
            results[phase] = phases[phase]()
            results[phase]["seconds"] = round(time.perf_counter() - t0, 1)
            save(args, results, t_start)  # after every phase: a later phase's failure loses nothing


def save(args: argparse.Namespace, results: dict, t_start: float) -> None:
    write_results(args.out, "reliability", {"phases": results, "bars": bar_values(results)},
                  data={"pipeline": "artifacts" if REAL else "test pipeline (tests/serving_fixtures.py)"},
                  machine={"loadavg": os.getloadavg(), "cpu_count": os.cpu_count()},
                  command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), wall_s=round(time.time() - t_start))


def bar_values(r: dict) -> dict:
    """Each bar: (measured, met) from whichever phases have run."""
    got = {}
    if "slow" in r:
        got["slow_p95_s"] = max(v["p95_s"] for k, v in r["slow"].items() if isinstance(v, dict))
        got["slow_log_growth_mb"] = max(v["log_growth_mb"] for k, v in r["slow"].items() if isinstance(v, dict))
    if "long" in r:
        got["long_p50_ratio"] = r["long"]["p50_ratio_last_vs_fresh"]
        got["long_page_kb"] = r["long"]["largest_page_kb"]
    if "busy" in r:
        got["busy_p50_ratio"] = r["busy"]["llm_threads_1"]["ratio"]
    if "keys" in r:
        got["wrong_keys_429_share"] = r["keys"]["after_20_429_share"]
    if "fuzz" in r:
        got["fuzz_5xx"] = sum(v["5xx"] for k, v in r["fuzz"].items() if isinstance(v, dict))
    if "kill" in r:
        got["kill_lost"] = r["kill"]["acknowledged_lost"] + r["kill"]["acknowledged_wrong_turn"]
        got["kill_duplicated"] = r["kill"]["stored_twice"]
    if "faults" in r:
        probes = [p for v in r["faults"].values() if isinstance(v, dict) for p in v["during"]]
        got["health_503_s"] = max(p["health_s"] for p in probes) if probes else None
        got["faults_all_503_json_and_recovered"] = all(
            p["health"] == 503 and p["turn"] == 503 and p["turn_type"] == "application/json" for p in probes) and all(
            v["after_clearing"]["health"] == 200 and v["after_clearing"]["turn"] == 200
            for v in r["faults"].values() if isinstance(v, dict))
    out = {}
    for name, value in got.items():
        op, bar = BARS.get(name, ("==", True))
        met = value is not None and (value <= bar if op == "<=" else value >= bar if op == ">=" else value == bar)
        out[name] = {"value": value, "bar": f"{op} {bar}", "met": met}
    return out


if __name__ == "__main__":
    main()
