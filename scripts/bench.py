#!/usr/bin/env python3
"""Benchmarks of mediafire-dav against what users would otherwise use.

Driven by `scripts/bench.sh` (which builds the binary first); standard library
only. Every scenario starts fresh processes (so VmHWM, a high-water mark since
start, belongs to that scenario alone) on free loopback ports, and every
timing is the median of `--runs` runs with min and max. The anchors:

- GET of a big file through the server vs. curl of the emulator's direct link;
- PUT of a big file through the server vs. `sha256sum` plus one
  `upload/simple` POST to the emulator (the least work the upload needs);
- a 2 GiB PUT + GET through the server with a SHA-256 comparison, and the
  server's peak RSS above idle (must stay under 64 MiB);
- depth-1 PROPFIND of a cached folder with 16 connections (wrk) vs.
  `rclone serve webdav` of a local folder with the same entries;
- `rclone copy` of many small files through the server vs. through
  `rclone serve webdav` on local disk;
- cache memory per entry (`examples/cache_memory.rs`).

It prints a Markdown table on stdout (progress goes to stderr) and exits
non-zero when a scenario fails (wrong bytes, errors, a crash), never because a
speed goal is missed: goals are reported, not asserted.
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from contextlib import contextmanager

MIB = 1024 * 1024
COOKIE = "bench-cookie"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def proc_status(pid):
    """VmRSS and VmHWM of `pid` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def proc_cpu(pid):
    """User + system CPU seconds `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A child process with its log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name, argv, logdir, port):
        self.name = name
        self.port = port
        self.log_path = os.path.join(logdir, f"{name}-{port}.log")
        self.log_file = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.idle = None

    @property
    def pid(self):
        return self.popen.pid

    def wait_ready(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")
            try:
                status, _ = http_request(self.port, "GET", path, timeout=2)
                if status < 500:
                    # let start-up allocations settle, then note the idle footprint
                    time.sleep(0.3)
                    self.idle = proc_status(self.pid)
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer {path} within {timeout} s\n{self.tail()}")

    def cpu(self):
        return proc_cpu(self.pid)

    def memory(self):
        """Peak RSS so far and the peak above the idle footprint, in bytes."""
        now = proc_status(self.pid)
        return {"peak": now["VmHWM"], "above_idle": now["VmHWM"] - self.idle["VmRSS"]}

    def alive(self):
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} died ({self.popen.returncode})\n{self.tail()}")

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(f"  | {line}" for line in lines[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log_file.close()


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.work = workdir
        self.logdir = os.path.join(workdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.procs = []
        self.counter = 0
        self.rclone_conf = os.path.join(workdir, "rclone.conf")
        open(self.rclone_conf, "w").close()

    def fresh_dir(self, name):
        self.counter += 1
        path = os.path.join(self.work, f"{name}-{self.counter}")
        os.makedirs(path)
        return path

    def spawn(self, name, argv, port, ready_path):
        p = Proc(name, argv, self.logdir, port)
        self.procs.append(p)
        return p.wait_ready(ready_path)

    def emulator(self):
        port = free_port()
        data = self.fresh_dir("emu")
        argv = [
            self.args.bin, "emulator", "--listen", f"127.0.0.1:{port}",
            "--cookie", COOKIE, "--data-dir", data,
        ]
        p = self.spawn("emulator", argv, port, "/__emulator/stats")
        p.data_dir = data
        return p

    def server(self, emu):
        port = free_port()
        state = self.fresh_dir("state")
        argv = [
            self.args.bin, "serve", "--listen", f"127.0.0.1:{port}",
            "--api-base", f"http://127.0.0.1:{emu.port}", "--cookie", COOKIE,
            "--no-auth", "--state-dir", state,
            "--calls-per-second", "1000", "--burst", "1000",
        ]
        p = self.spawn("server", argv, port, "/healthz")
        p.state_dir = state
        return p

    def rclone_serve(self, root):
        port = free_port()
        argv = [
            "rclone", "serve", "webdav", root, "--addr", f"127.0.0.1:{port}",
            "--config", self.rclone_conf,
        ]
        return self.spawn("rclone-serve", argv, port, "/")

    def stop(self, *procs):
        for p in procs:
            p.stop()
            if p in self.procs:
                self.procs.remove(p)
            for attr in ("data_dir", "state_dir"):
                d = getattr(p, attr, None)
                if d:
                    shutil.rmtree(d, ignore_errors=True)

    def stop_all(self):
        self.stop(*list(self.procs))

    @contextmanager
    def stack(self, with_server=True):
        emu = self.emulator()
        srv = None
        try:
            if with_server:
                srv = self.server(emu)
            yield emu, srv
        finally:
            self.stop(*[p for p in (srv, emu) if p])


# --------------------------------------------------------------------------------------------
# the emulator's own API (for the anchors and the statistics)


def emu_stats(emu):
    status, body = http_request(emu.port, "GET", "/__emulator/stats")
    if status != 200:
        raise BenchError(f"emulator stats answered {status}")
    return json.loads(body)


def emu_reset(emu):
    status, _ = http_request(emu.port, "POST", "/__emulator/stats/reset")
    if status != 200:
        raise BenchError(f"emulator stats reset answered {status}")


def emu_token(emu):
    status, body = http_request(
        emu.port, "POST", "/application/get_session_token.php",
        body=b"response_format=json",
        headers={"Cookie": COOKIE, "Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != 200:
        raise BenchError(f"session token answered {status}: {body[:200]!r}")
    return json.loads(body)["response"]["session_token"]


def emu_api(emu, action, token, **params):
    q = urllib.parse.urlencode({"session_token": token, "response_format": "json", **params})
    status, body = http_request(emu.port, "GET", f"/api/1.5/{action}.php?{q}")
    doc = json.loads(body)["response"]
    if status != 200 or doc.get("result") != "Success":
        raise BenchError(f"{action} failed: {status} {doc}")
    return doc


def emu_seed_entries(emu, folder, names, content):
    """Stores `names` (files) in `folder` through the admin seed endpoint, on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    try:
        for name in names:
            q = urllib.parse.urlencode({"path": f"/{folder}/{name}"})
            conn.request("POST", f"/__emulator/seed?{q}", body=content)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise BenchError(f"seeding {name} answered {resp.status}")
    finally:
        conn.close()


def calls_summary(stats, per=1):
    """`12 (folder/get_content 2, file/get_links 1, ...)` divided by `per`."""
    total = stats["total_api_calls"] / per
    parts = sorted(stats["api_calls"].items(), key=lambda kv: (-kv[1], kv[0]))
    fmt = (lambda v: f"{v:g}") if per == 1 else (lambda v: f"{v:.2f}")
    inner = ", ".join(f"{k} {fmt(v / per)}" for k, v in parts)
    return f"{fmt(total)}" + (f" ({inner})" if inner else "")


# --------------------------------------------------------------------------------------------
# measured operations


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, **kw)
    if r.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[:3])}... exited {r.returncode}: {r.stderr.decode(errors='replace')[-800:]}"
        )
    return r.stdout.decode(errors="replace")


def timed(argv, **kw):
    t = time.monotonic()
    out = run(argv, **kw)
    return time.monotonic() - t, out


def curl_get(url, expect_size):
    """Downloads `url` to /dev/null; returns seconds."""
    secs, out = timed(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url])
    code, size = out.split()
    if code != "200" or int(size) != expect_size:
        raise BenchError(f"GET {url}: status {code}, {size} bytes (expected {expect_size})")
    return secs


def curl_put(url, path, expect=(200, 201, 204)):
    secs, out = timed([
        "curl", "-sS", "-T", path, "-H", "Expect:", "-o", "/dev/null", "-w", "%{http_code}", url,
    ])
    if int(out) not in expect:
        raise BenchError(f"PUT {url}: status {out}")
    return secs


def direct_upload(emu, path, name):
    """The PUT anchor: hash the file, then one upload/simple POST of it. Returns seconds."""
    token = emu_token(emu)  # the server has its session before a PUT, too
    size = os.path.getsize(path)
    t = time.monotonic()
    digest = run(["sha256sum", path]).split()[0]
    q = urllib.parse.urlencode({"session_token": token, "response_format": "json"})
    out = run([
        "curl", "-sS", "-X", "POST", "-T", path, "-H", "Expect:",
        "-H", "Content-Type: application/octet-stream",
        "-H", f"x-filename: {name}", "-H", f"x-filesize: {size}", "-H", f"x-filehash: {digest}",
        f"http://127.0.0.1:{emu.port}/api/1.5/upload/simple.php?{q}",
    ])
    secs = time.monotonic() - t
    doc = json.loads(out)["response"]
    key = doc.get("doupload", {}).get("key")
    if doc.get("result") != "Success" or not key:
        raise BenchError(f"upload/simple failed: {doc}")
    # poll_delay is 0: the file exists as soon as the POST answers; check it.
    poll = emu_api(emu, "upload/poll_upload", token, key=key)
    if not poll.get("doupload", {}).get("quickkey"):
        raise BenchError(f"upload/simple left no file: {poll}")
    return secs


def direct_download(emu, name, size):
    """The GET anchor: token, file/get_links, curl of the direct link. Returns seconds."""
    token = emu_token(emu)
    content = emu_api(emu, "folder/get_content", token, folder_key="myfiles", content_type="files")
    files = content["folder_content"]["files"]
    key = next(f["quickkey"] for f in files if f["filename"] == name)
    links = emu_api(emu, "file/get_links", token, quick_key=key, link_type="direct_download")
    return curl_get(links["links"][0]["direct_download"], size)


def make_file(path, size, seed):
    """Writes `size` pseudo-random bytes (incompressible, cheap to make); returns SHA-256."""
    h = hashlib.sha256()
    block = hashlib.shake_256(seed.encode()).digest(4 * MIB)
    with open(path, "wb") as f:
        written, i = 0, 0
        while written < size:
            # vary each block so the content does not repeat
            chunk = (i.to_bytes(8, "little") + block[8:])[: size - written]
            f.write(chunk)
            h.update(chunk)
            written += len(chunk)
            i += 1
    return h.hexdigest()


def wrk_propfind(port, path, seconds, lua):
    out = run([
        "wrk", "-t", "2", "-c", "16", "-d", f"{seconds}s", "--timeout", "30s", "-s", lua,
        f"http://127.0.0.1:{port}{path}",
    ])
    rps = None
    requests = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "requests in" in line:
            requests = int(line.split()[0])
        if line.startswith("Non-2xx or 3xx responses:") or line.startswith("Socket errors:"):
            raise BenchError(f"wrk against {path}: {line}\n{out}")
    if rps is None or not requests:
        raise BenchError(f"wrk printed no rate:\n{out}")
    return rps, requests


def rclone_copy(src, url, dest, strict):
    """`rclone copy`; `strict` allows no retry, so any error from the server fails the run.

    `rclone serve webdav` (golang.org/x/net/webdav) takes a temporary lock for each write
    request without an `If` header, so two of rclone's transfers making the same parent
    folder at once can get 423 (seen once in a smoke run), which rclone retries at low
    level; the anchor keeps rclone's default retries for that.
    """
    retries = ["--retries", "1", "--low-level-retries", "1"] if strict else []
    try:
        return timed([
            "rclone", "copy", src, f":webdav:{dest}", "--webdav-url", url,
            "--webdav-vendor", "other", "--config", os.devnull, *retries,
        ])[0]
    except BenchError as e:
        raise BenchError(f"rclone copy to {url}: {e}") from None


def rclone_count(url, dest):
    out = run([
        "rclone", "lsf", f":webdav:{dest}", "--webdav-url", url, "--webdav-vendor", "other",
        "--config", os.devnull,
    ])
    return len([line for line in out.splitlines() if line.strip()])


# --------------------------------------------------------------------------------------------
# scenarios


def scenario_transfer(b, path, size, results):
    """GET and PUT of one big file, each against its anchor, fresh processes each."""
    name = os.path.basename(path)
    # PUT anchor + GET anchor + GET through the server, on one emulator
    with b.stack(with_server=False) as (emu, _):
        results["put_direct"].append(direct_upload(emu, path, name))
        results["get_direct"].append(direct_download(emu, name, size))
        srv = b.server(emu)
        try:
            emu_reset(emu)
            cpu = srv.cpu()
            results["get_server"].append(curl_get(f"http://127.0.0.1:{srv.port}/{name}", size))
            srv.alive()
            results["get_cpu"].append(srv.cpu() - cpu)
            results["get_rss"].append(srv.memory())
            results["get_calls"] = calls_summary(emu_stats(emu))
        finally:
            b.stop(srv)
    # PUT through the server on a fresh emulator (it would otherwise know the content)
    with b.stack() as (emu, srv):
        emu_reset(emu)
        cpu = srv.cpu()
        results["put_server"].append(curl_put(f"http://127.0.0.1:{srv.port}/{name}", path))
        srv.alive()
        results["put_cpu"].append(srv.cpu() - cpu)
        results["put_rss"].append(srv.memory())
        stats = emu_stats(emu)
        results["put_calls"] = calls_summary(stats)
        if stats["files"] != 1:
            raise BenchError(f"PUT through the server left {stats['files']} files upstream")


def scenario_roundtrip(b, path, size, digest, results):
    """Multi-GiB PUT, then GET with a SHA-256 comparison; peak RSS above idle after each."""
    name = os.path.basename(path)
    with b.stack() as (emu, srv):
        url = f"http://127.0.0.1:{srv.port}/{name}"
        cpu = srv.cpu()
        t_put = curl_put(url, path)
        put_mem = srv.memory()
        put_cpu = srv.cpu() - cpu
        t = time.monotonic()
        r = subprocess.run(
            f"curl -sS --fail {url} | sha256sum", shell=True, capture_output=True, check=False
        )
        t_get = time.monotonic() - t
        got = r.stdout.decode().split()[0] if r.returncode == 0 and r.stdout else "?"
        srv.alive()
        get_mem = srv.memory()
        results["roundtrip"].append({
            "put": t_put, "get": t_get, "put_mem": put_mem, "get_mem": get_mem,
            "put_cpu": put_cpu, "get_cpu": srv.cpu() - cpu - put_cpu,
            "match": got == digest,
        })
        if got != digest:
            raise BenchError(f"round trip of {size} bytes: SHA-256 {got} != {digest}")


def scenario_propfind(b, folder_local, names, results):
    lua = os.path.join(b.work, "propfind.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "PROPFIND"\nwrk.headers["Depth"] = "1"\n')
    with b.stack() as (emu, srv):
        emu_seed_entries(emu, "list", names, b"x" * 4096)
        status, body = http_request(srv.port, "PROPFIND", "/list/", headers={"Depth": "1"})
        if status != 207 or body.count(b"<D:href>") + body.count(b"<d:href>") < len(names):
            hrefs = body.lower().count(b"href>") // 2
            if status != 207 or hrefs < len(names):
                raise BenchError(f"PROPFIND /list/ answered {status} with {hrefs} hrefs")
        emu_reset(emu)
        cpu = srv.cpu()
        rps, n = wrk_propfind(srv.port, "/list/", b.args.duration, lua)
        srv.alive()
        results["propfind_cpu"].append((srv.cpu() - cpu) / n)
        results["propfind_server"].append(rps)
        results["propfind_rss"].append(srv.memory())
        results["propfind_calls"] = calls_summary(emu_stats(emu), per=n)
    rc = b.rclone_serve(folder_local)
    try:
        rps, _ = wrk_propfind(rc.port, "/", b.args.duration, lua)
        results["propfind_rclone"].append(rps)
        results["propfind_rclone_rss"].append(rc.memory())
    finally:
        b.stop(rc)


def scenario_copy(b, src, count, results):
    with b.stack() as (emu, srv):
        emu_reset(emu)
        url = f"http://127.0.0.1:{srv.port}/"
        cpu = srv.cpu()
        results["copy_server"].append(rclone_copy(src, url, "copy", strict=True))
        srv.alive()
        results["copy_cpu"].append((srv.cpu() - cpu) / count)
        results["copy_rss"].append(srv.memory())
        stats = emu_stats(emu)
        results["copy_calls"] = calls_summary(stats, per=count)
        if stats["files"] != count:
            raise BenchError(f"rclone copy left {stats['files']} of {count} files upstream")
    root = b.fresh_dir("rclone-root")
    rc = b.rclone_serve(root)
    try:
        url = f"http://127.0.0.1:{rc.port}/"
        results["copy_rclone"].append(rclone_copy(src, url, "copy", strict=False))
        results["copy_rclone_rss"].append(rc.memory())
        got = rclone_count(url, "copy")
        if got != count:
            raise BenchError(f"rclone serve got {got} of {count} files")
    finally:
        b.stop(rc)
        shutil.rmtree(root, ignore_errors=True)


def cache_memory(args):
    argv = ["cargo", "run", "--quiet", "--locked", "--example", "cache_memory"]
    if not args.smoke:
        argv.insert(2, "--release")
    argv += ["--", "--entries", str(args.cache_entries)]
    r = subprocess.run(argv, capture_output=True)
    if r.returncode != 0:
        raise BenchError(f"cache_memory bench failed:\n{r.stderr.decode(errors='replace')[-2000:]}")
    for line in r.stdout.decode().splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"cache_memory printed no result:\n{r.stdout.decode()}")


# --------------------------------------------------------------------------------------------
# report


def mib(n):
    return f"{n / MIB:.1f}"


def spread(values, fmt):
    """`median (min–max)`."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def ratio_spread(num, den, invert=False):
    """Ratios of paired runs: `median (min–max)`."""
    pairs = [(d / n) if invert else (n / d) for n, d in zip(num, den)]
    return spread(pairs, lambda v: f"{v:.2f}"), statistics.median(pairs)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} × {model}{mem}, {platform.system()} {platform.release()}"


def report(args, r):
    size_label = human(args.size)
    big_label = human(args.big)
    rows = []
    goals = []

    def goal(ok, text):
        if args.smoke:
            return "(smoke run: not judged)"
        goals.append((ok, text))
        return "met" if ok else "**missed**"

    sec = lambda v: f"{v:.2f} s"
    # GET: throughput ratio = direct time / server time
    tp = lambda t: f"{args.size / MIB / t:.0f} MiB/s"
    cell, med = ratio_spread(r["get_server"], r["get_direct"], invert=True)
    rows.append((
        f"GET {size_label}: throughput, server vs. direct link",
        f"{spread([args.size / t for t in r['get_server']], lambda v: f'{v / MIB:.0f} MiB/s')} vs. "
        f"{spread([args.size / t for t in r['get_direct']], lambda v: f'{v / MIB:.0f} MiB/s')}",
        cell, "≥ 0.9", goal(med >= 0.9, "GET throughput ratio ≥ 0.9"),
    ))
    cell, med = ratio_spread(r["put_server"], r["put_direct"])
    rows.append((
        f"PUT {size_label}: time, server vs. sha256sum + one upload/simple",
        f"{spread(r['put_server'], sec)} vs. {spread(r['put_direct'], sec)}",
        cell, "≤ 1.3", goal(med <= 1.3, "PUT time ratio ≤ 1.3"),
    ))
    cell, med = ratio_spread(r["propfind_server"], r["propfind_rclone"])
    rows.append((
        f"PROPFIND depth 1, cached {args.entries}-entry folder, 16 clients: req/s, server vs. rclone serve webdav",
        f"{spread(r['propfind_server'], lambda v: f'{v:.0f}')} vs. "
        f"{spread(r['propfind_rclone'], lambda v: f'{v:.0f}')}",
        cell, "≥ 1.0", goal(med >= 1.0, "PROPFIND rate ratio ≥ 1.0"),
    ))
    cell, med = ratio_spread(r["copy_server"], r["copy_rclone"])
    rows.append((
        f"rclone copy {args.files} × 4 KiB: time, server vs. rclone serve webdav (local disk)",
        f"{spread(r['copy_server'], sec)} vs. {spread(r['copy_rclone'], sec)}",
        cell, "—", "(reported)",
    ))
    rt = r["roundtrip"]
    above = max(max(x["put_mem"]["above_idle"], x["get_mem"]["above_idle"]) for x in rt)
    rows.append((
        f"PUT + GET {big_label} through the server, SHA-256 compared",
        f"PUT {spread([x['put'] for x in rt], sec)}, GET {spread([x['get'] for x in rt], sec)}",
        "match" if all(x["match"] for x in rt) else "**MISMATCH**",
        "peak RSS < idle + 64 MiB",
        goal(above < 64 * MIB, "multi-GiB PUT peak RSS < idle + 64 MiB")
        + f" (+{mib(above)} MiB)",
    ))

    out = []
    load = f"load average {r['load_start']:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    out.append(f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
               f"{load}; {'smoke run (debug build)' if args.smoke else 'release build'}; "
               f"median of {args.runs} run(s) (min–max).")
    out.append("")
    out.append("| Scenario | Measured (server vs. anchor) | Ratio | Goal | Result |")
    out.append("|---|---|---|---|---|")
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("| Scenario | Server peak RSS (above idle) | Server CPU | API calls per operation |")
    out.append("|---|---|---|---|")

    def rss(key):
        vals = r[key]
        return (f"{spread([v['peak'] for v in vals], mib)} MiB "
                f"(+{spread([v['above_idle'] for v in vals], mib)} MiB)")

    cpu_s = lambda key: spread(r[key], lambda v: f"{v:.2f} s")
    cpu_ms = lambda key: spread(r[key], lambda v: f"{v * 1000:.1f} ms")
    out.append(f"| idle | {spread([v['idle'] for v in r['idle_rss']], mib)} MiB | — | — |")
    out.append(f"| GET {size_label} (cold cache) | {rss('get_rss')} | {cpu_s('get_cpu')} | "
               f"{r['get_calls']} |")
    out.append(f"| PUT {size_label} | {rss('put_rss')} | {cpu_s('put_cpu')} | {r['put_calls']} |")
    put_big = [x["put_mem"] for x in rt]
    get_big = [x["get_mem"] for x in rt]
    out.append(f"| PUT {big_label} | {spread([v['peak'] for v in put_big], mib)} MiB "
               f"(+{spread([v['above_idle'] for v in put_big], mib)} MiB) | "
               f"{spread([x['put_cpu'] for x in rt], lambda v: f'{v:.2f} s')} | — |")
    out.append(f"| then GET {big_label} | {spread([v['peak'] for v in get_big], mib)} MiB "
               f"(+{spread([v['above_idle'] for v in get_big], mib)} MiB) | "
               f"{spread([x['get_cpu'] for x in rt], lambda v: f'{v:.2f} s')} | — |")
    out.append(f"| PROPFIND load (per request) | {rss('propfind_rss')} | {cpu_ms('propfind_cpu')} | "
               f"{r['propfind_calls']} |")
    out.append(f"| rclone copy (per file) | {rss('copy_rss')} | {cpu_ms('copy_cpu')} | "
               f"{r['copy_calls']} |")
    out.append(f"| rclone serve webdav, PROPFIND load | "
               f"{spread([v['peak'] for v in r['propfind_rclone_rss']], mib)} MiB | — | — |")
    out.append(f"| rclone serve webdav, copy | "
               f"{spread([v['peak'] for v in r['copy_rclone_rss']], mib)} MiB | — | — |")
    cm = r.get("cache")
    if cm:
        out.append("")
        out.append(
            f"Cache memory: {cm['entries']:,} cached entries in {cm['folders']} folders take "
            f"{cm['bytes_per_entry']:.0f} bytes per entry as counted by the allocator "
            f"({mib(cm['live_bytes'])} MiB live; process RSS grew {mib(cm['rss_growth'])} MiB)."
        )
    return "\n".join(out), goals


def human(n):
    for unit, size in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------------------------


def stop_on_sigterm(signum, frame):
    # Turn SIGTERM into an exception so the children and the work dir go too.
    raise SystemExit(f"bench: stopped by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True, help="the mediafire-dav binary")
    p.add_argument("--smoke", action="store_true", help="small sizes, one run (CI)")
    p.add_argument("--runs", type=int, help="runs per scenario [3; smoke 1]")
    p.add_argument("--size-mib", type=int, help="GET/PUT file size [1024; smoke 8]")
    p.add_argument("--big-mib", type=int, help="round-trip file size [2048; smoke 16]")
    p.add_argument("--entries", type=int, help="PROPFIND folder entries [1000; smoke 100]")
    p.add_argument("--files", type=int, help="rclone copy file count [1000; smoke 50]")
    p.add_argument("--duration", type=int, help="seconds of PROPFIND load [10; smoke 2]")
    p.add_argument("--cache-entries", type=int, help="cached entries [100000; smoke 2000]")
    p.add_argument("--workdir", help="where the temporary files go [system temp dir]")
    p.add_argument("--output", help="also write the table to this file")
    args = p.parse_args()
    smoke = args.smoke
    args.runs = args.runs or (1 if smoke else 3)
    args.size = (args.size_mib or (8 if smoke else 1024)) * MIB
    args.big = (args.big_mib or (16 if smoke else 2048)) * MIB
    args.entries = args.entries or (100 if smoke else 1000)
    args.files = args.files or (50 if smoke else 1000)
    args.duration = args.duration or (2 if smoke else 10)
    args.cache_entries = args.cache_entries or (2000 if smoke else 100_000)
    for tool in ("curl", "wrk", "rclone", "sha256sum", "cargo"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: `{tool}` is required")

    need = args.size + 2 * args.big
    workdir = tempfile.mkdtemp(prefix="mediafire-dav-bench-", dir=args.workdir)
    free = shutil.disk_usage(workdir).free
    if free < 3 * need:
        shutil.rmtree(workdir)
        sys.exit(f"bench: {human(free)} free in {workdir}; need about {human(3 * need)}")
    b = Bench(args, workdir)
    results = {k: [] for k in (
        "get_direct", "get_server", "get_rss", "put_direct", "put_server", "put_rss",
        "roundtrip", "propfind_server", "propfind_rclone", "propfind_rss",
        "propfind_rclone_rss", "copy_server", "copy_rclone", "copy_rss", "copy_rclone_rss",
        "idle_rss", "get_cpu", "put_cpu", "propfind_cpu", "copy_cpu",
    )}
    started = time.monotonic()
    results["load_start"] = os.getloadavg()[0]
    try:
        log(f"work dir {workdir}; making test files")
        data = os.path.join(workdir, "data")
        os.makedirs(data)
        file_path = os.path.join(data, "transfer.bin")
        make_file(file_path, args.size, "transfer")
        big_path = os.path.join(data, "roundtrip.bin")
        big_digest = make_file(big_path, args.big, "roundtrip")
        names = [f"entry-{i:05d}.txt" for i in range(args.entries)]
        listing = os.path.join(data, "listing")
        os.makedirs(listing)
        for n in names:
            with open(os.path.join(listing, n), "wb") as f:
                f.write(b"x" * 4096)
        small = os.path.join(data, "small")
        os.makedirs(small)
        for i in range(args.files):
            with open(os.path.join(small, f"small-{i:05d}.bin"), "wb") as f:
                f.write(hashlib.shake_256(f"small{i}".encode()).digest(4096))

        for i in range(args.runs):
            log(f"run {i + 1}/{args.runs}: GET/PUT of {human(args.size)}")
            scenario_transfer(b, file_path, args.size, results)
            log(f"run {i + 1}/{args.runs}: PROPFIND load")
            scenario_propfind(b, listing, names, results)
            log(f"run {i + 1}/{args.runs}: rclone copy of {args.files} files")
            scenario_copy(b, small, args.files, results)
        log(f"round trip of {human(args.big)}")
        with b.stack() as (emu, srv):
            results["idle_rss"].append({"idle": srv.idle["VmRSS"]})
        scenario_roundtrip(b, big_path, args.big, big_digest, results)
        os.remove(big_path)
        os.remove(file_path)
        log(f"cache memory with {args.cache_entries} entries")
        results["cache"] = cache_memory(args)
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        b.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    table, goals = report(args, results)
    print(table)
    missed = [text for ok, text in goals if not ok]
    print()
    verdict = ("Goals: not judged in a smoke run" if args.smoke else
               f"Goals: {len(goals) - len(missed)} met, {len(missed)} missed"
               + (f" ({'; '.join(missed)})" if missed else ""))
    print(f"{verdict}. Took {time.monotonic() - started:.0f} s.")
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
