#!/usr/bin/env python3
"""standin.py: the tremote Modal app's HTTP contract (docs/MODAL.md, API v1)
served on loopback, for tests.  Python's standard library only.

Every machine is a real `tremote-gpu-agent --backend emu` with a fresh TLS
pair and the POSTed secret, behind a raw TCP relay on another loopback port
(the topology of Modal's unencrypted tunnel: the agent's TLS passes through
the relay unchanged).  Answers carry the relay's host and port.

Test knobs (same auth as the API):
  POST /standin/config   {"start_delay_s": S, "capacity": K, "fail_next": "why",
                          "retry_after_s": R}   (any of them)
      start_delay_s  seconds a machine stays "starting" (phase scheduling,
                     then image) before its agent starts (default 0)
      capacity       the number of further creates that answer 503 as Modal
                     out of capacity would (-1: all of them until set again;
                     0: none, the default)
      fail_next      the next machine created fails to start: state
                     "failed" with this why (null: cancel)
      retry_after_s  what those 503s say in retry_after_s and Retry-After
                     (default 30, as the app)
      Answers the whole configuration.
  POST /standin/preempt/ID
      kill -9 the machine's agent and close its relay (with its
      connections): state "stopped", why "preempted".

Every agent started dies with the stand-in: on SIGTERM/SIGINT it stops them
and exits 0; a crash kills them by the parent-death signal each agent gets.
"""

import argparse
import ctypes
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

GPUS = {
    "T4": "T4", "L4": "L4", "A10G": "A10", "A100-40GB": "A100-40GB",
    "A100-80GB": "A100-80GB", "L40S": "L40S", "H100": "H100!", "H200": "H200",
    "B200": "B200",
}
GPU_NAMES = list(GPUS)
RETRY_AFTER_S = 30
WAIT_MAX_S = 60
BODY_MAX = 64 * 1024
MACHINE_ID_RE = re.compile(r"[a-z0-9-]{1,31}")
SECRET_RE = re.compile(r"[A-Za-z0-9]{32,256}")
OWNER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
FINGERPRINT_RE = re.compile(r"fingerprint = (SHA256:[0-9A-Fa-f:]+)")
AGENT_READY_S = 30


class HttpError(Exception):
    def __init__(self, status, error, headers=(), **fields):
        super().__init__(error)
        self.status = status
        self.body = dict(error=error, **fields)
        self.headers = list(headers)


def _int_field(body, name, lo, hi, default):
    if name not in body:
        return default
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise HttpError(400, f"{name}: must be an integer from {lo} to {hi}, "
                        f"not {json.dumps(v)[:40]}")
    return v


def validate_create(raw):
    """The POST body, checked as the Modal app checks it."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HttpError(400, f"the body is not JSON: {e}")
    if not isinstance(body, dict):
        raise HttpError(400, "the body is not a JSON object")
    mid = body.get("machine_id")
    if not isinstance(mid, str) or not MACHINE_ID_RE.fullmatch(mid):
        raise HttpError(400, "machine_id: must be 1 to 31 of [a-z0-9-]")
    if "gpu" not in body:
        raise HttpError(400, "gpu: missing (one of " + ", ".join(GPU_NAMES) + ")",
                        valid=GPU_NAMES)
    g = body["gpu"]
    gpu = next((n for n in GPU_NAMES if isinstance(g, str) and n.lower() == g.lower()), None)
    if gpu is None:
        shown = g if isinstance(g, str) else json.dumps(g)
        raise HttpError(400, f"unknown GPU type '{shown[:40]}'", valid=GPU_NAMES)
    secret = body.get("secret")
    if not isinstance(secret, str) or not SECRET_RE.fullmatch(secret):
        raise HttpError(400, "secret: must be 32 to 256 of [A-Za-z0-9]")
    owner = body.get("owner")
    if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
        raise HttpError(400, "owner: must be 1 to 64 of [A-Za-z0-9._-] "
                        "(the broker's id)")
    return dict(machine_id=mid, gpu=gpu, secret=secret, owner=owner,
                timeout_s=_int_field(body, "timeout_s", 60, 86400, 3600),
                idle_timeout_s=_int_field(body, "idle_timeout_s", 0, 86400, 600))


# -- parent-death signal ------------------------------------------------------

_libc = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong, ctypes.c_ulong]
except (OSError, AttributeError):
    _prctl = None
PR_SET_PDEATHSIG = 1


def _child_setup(parent):
    """In the forked child: die with SIGKILL when the spawning thread (which
    lives as long as the agent) or the stand-in goes.  Only async-signal-safe
    work here: a pre-resolved prctl and getppid."""
    def setup():
        os.setpgid(0, 0)  # its own process group: the terminal's ^C is ours to pass on
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return setup


# -- the relay ----------------------------------------------------------------

class Relay:
    """Raw TCP relay 127.0.0.1:port -> 127.0.0.1:target: bytes are copied
    unchanged both ways, a thread per direction of each connection."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.socks = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True,
                         name=f"relay-{self.port}").start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.closed:
                    c.close()
                    u.close()
                    return
                self.socks.update((c, u))
            pair = {"left": 2}
            threading.Thread(target=self._pump, args=(c, u, pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, pair), daemon=True).start()

    def _pump(self, src, dst, pair):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        with self.lock:
            pair["left"] -= 1
            if pair["left"] == 0:
                for s in (src, dst):
                    self.socks.discard(s)
                    s.close()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            socks = list(self.socks)
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- machines -----------------------------------------------------------------

class Machine:
    def __init__(self, req, seq, created):
        self.__dict__.update(req)
        self.sandbox_id = f"sb-standin-{seq}"
        self.created = created
        self.state = "starting"
        self.phase = "scheduling"
        self.why = None
        self.exit_code = None
        self.fingerprint = None
        self.relay = None
        self.proc = None
        self.stop_why = None     # set when asked to stop: deleted, preempted
        self.fail = None         # set by fail_next

    def view(self):
        m = {
            "machine_id": self.machine_id, "gpu": self.gpu,
            "modal_gpu": GPUS[self.gpu], "owner": self.owner,
            "state": self.state, "phase": self.phase,
            "elapsed_s": int(time.monotonic() - self.created),
            "why": self.why, "exit_code": self.exit_code,
            "sandbox_id": self.sandbox_id,
        }
        if self.state == "ready":
            m.update(host="127.0.0.1", port=self.relay.port,
                     fingerprint=self.fingerprint)
        return m


class Standin:
    def __init__(self, agent, agent_args, start_delay, workdir):
        self.agent = agent
        self.agent_args = agent_args
        self.cfg = {"start_delay_s": start_delay, "capacity": 0, "fail_next": None,
                    "retry_after_s": RETRY_AFTER_S}
        self.workdir = workdir
        self.cond = threading.Condition()
        self.machines = {}
        self.seq = 0
        self.stopping = False

    # state changes happen under self.cond and wake the long polls
    def _set(self, m, **kw):
        with self.cond:
            m.__dict__.update(kw)
            self.cond.notify_all()

    def create(self, raw):
        req = validate_create(raw)
        with self.cond:
            if self.stopping:
                raise HttpError(503, "the stand-in is stopping",
                                [("Retry-After", str(RETRY_AFTER_S))],
                                retry_after_s=RETRY_AFTER_S)
            old = self.machines.get(req["machine_id"])
            if old is not None and old.state in ("starting", "ready"):
                if old.gpu != req["gpu"]:
                    raise HttpError(409, f"machine {old.machine_id} exists with gpu "
                                    f"{old.gpu}, not {req['gpu']}", gpu=old.gpu)
                return 200, old.view()
            if self.cfg["capacity"] != 0:
                if self.cfg["capacity"] > 0:
                    self.cfg["capacity"] -= 1
                ra = self.cfg["retry_after_s"]
                raise HttpError(503, f"no {req['gpu']} capacity on Modal (stand-in)",
                                [("Retry-After", str(ra))], retry_after_s=ra)
            self.seq += 1
            m = Machine(req, self.seq, time.monotonic())
            m.fail, self.cfg["fail_next"] = self.cfg["fail_next"], None
            delay = self.cfg["start_delay_s"]
            self.machines[m.machine_id] = m
            view = m.view()
        threading.Thread(target=self._run, args=(m, delay), daemon=True,
                         name=f"machine-{m.machine_id}").start()
        return 201, view

    def get(self, mid, wait):
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                m = self.machines.get(mid)
                if m is None:
                    raise HttpError(404, f"no machine {mid}")
                left = deadline - time.monotonic()
                if m.state != "starting" or left <= 0:
                    return 200, m.view()
                # wake at least every second: elapsed_s and phase move
                self.cond.wait(min(left, 1.0))

    def list(self, owner):
        with self.cond:
            ms = [m.view() for m in self.machines.values()
                  if owner is None or m.owner == owner]
        ms.sort(key=lambda v: v["machine_id"])
        return 200, {"machines": ms}

    def delete(self, mid):
        self._stop(mid, "deleted")
        return 200, {"machine_id": mid, "state": "stopped"}

    def preempt(self, mid):
        with self.cond:
            m = self.machines.get(mid)
            if m is None:
                raise HttpError(404, f"no machine {mid}")
        self._stop(mid, "preempted", kill=True)
        return 200, self.machines[mid].view()

    def config(self, raw):
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError) as e:
            raise HttpError(400, f"the body is not JSON: {e}")
        if not isinstance(body, dict):
            raise HttpError(400, "the body is not a JSON object")
        with self.cond:
            for k, v in body.items():
                if k == "start_delay_s":
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                        raise HttpError(400, "start_delay_s: a number of seconds >= 0")
                elif k == "capacity":
                    if isinstance(v, bool) or not isinstance(v, int) or v < -1:
                        raise HttpError(400, "capacity: an integer >= -1")
                elif k == "fail_next":
                    if v is not None and not isinstance(v, str):
                        raise HttpError(400, "fail_next: a string (the why) or null")
                elif k == "retry_after_s":
                    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                        raise HttpError(400, "retry_after_s: an integer >= 1")
                else:
                    raise HttpError(400, f"unknown knob {k!r} (valid: start_delay_s, "
                                    "capacity, fail_next, retry_after_s)")
            self.cfg.update(body)
            return 200, dict(self.cfg)

    def _stop(self, mid, why, kill=False):
        with self.cond:
            m = self.machines.get(mid)
            if m is None or m.state == "stopped":
                return
            if m.state == "failed":
                # as the app: a deleted machine reads stopped, why deleted
                if why == "deleted":
                    m.state, m.phase, m.why = "stopped", "stopped", why
                    self.cond.notify_all()
                return
            m.stop_why = why
            proc, relay = m.proc, m.relay
            m.state, m.phase, m.why = "stopped", "stopped", why
            self.cond.notify_all()
        if relay is not None:
            relay.close()
        if proc is not None:
            _end(proc, kill)

    def stop_all(self):
        with self.cond:
            self.stopping = True
            ids = list(self.machines)
        for mid in ids:
            self._stop(mid, "the stand-in stopped")
        with self.cond:
            procs = [m.proc for m in self.machines.values() if m.proc is not None]
        for p in procs:
            _end(p, False)

    # the life of one machine, in its own thread (which, through the
    # parent-death signal, also holds its agent's life)
    def _run(self, m, delay):
        t0 = time.monotonic()
        while True:
            left = delay - (time.monotonic() - t0)
            if m.stop_why or self.stopping:
                return
            if left <= 0:
                break
            phase = "scheduling" if time.monotonic() - t0 < delay / 2 else "image"
            if m.phase != phase:
                self._set(m, phase=phase)
            time.sleep(min(left, 0.1))
        self._set(m, phase="agent")
        if m.fail:
            self._fail(m, m.fail)
            return
        try:
            self._start_agent(m)
        except Exception as e:  # noqa: BLE001 - any failure is the machine's why
            self._fail(m, f"the agent did not start: {e}")
            return
        # Live until the agent exits or the Sandbox's lifetime ends.
        end = m.created + m.timeout_s
        try:
            rc = m.proc.wait(timeout=max(0.0, end - time.monotonic()))
            why = f"the agent exited with code {rc}"
        except subprocess.TimeoutExpired:
            rc = _end(m.proc, False)
            why = f"timed out after {m.timeout_s} s"
        with self.cond:
            if m.state in ("starting", "ready"):
                ready = m.state == "ready"
                m.state = "stopped" if ready or why.startswith("timed") else "failed"
                m.phase, m.why, m.exit_code = m.state, why, rc
                relay = m.relay
            else:
                relay = None
                if m.stop_why != "preempted":
                    m.exit_code = rc
            self.cond.notify_all()
        if relay is not None:
            relay.close()

    def _fail(self, m, why):
        with self.cond:
            if m.state == "starting":
                m.state, m.phase, m.why = "failed", "failed", why
            self.cond.notify_all()

    def _start_agent(self, m):
        d = tempfile.mkdtemp(prefix=f"{m.machine_id}-", dir=self.workdir)
        tls = os.path.join(d, "tls")
        os.mkdir(tls, 0o700)
        gen = subprocess.run([self.agent, "--gen-cert", tls], capture_output=True,
                             text=True, timeout=60)
        found = FINGERPRINT_RE.search(gen.stdout)
        if gen.returncode != 0 or not found:
            raise RuntimeError(f"--gen-cert exited {gen.returncode}: "
                               f"{(gen.stderr or gen.stdout).strip()[:200]}")
        fp = found.group(1)
        secret_file = os.path.join(d, "secret")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(m.secret)
        rfd, wfd = os.pipe()
        try:
            cmd = [self.agent, "--listen", "127.0.0.1:0", "--ready-fd", str(wfd),
                   "--backend", "emu",
                   "--tls-cert", os.path.join(tls, "cert.pem"),
                   "--tls-key", os.path.join(tls, "key.pem"),
                   "--secret-file", secret_file,
                   "--exit-idle", str(m.idle_timeout_s)] + self.agent_args
            with self.cond:
                if m.stop_why or self.stopping:
                    raise RuntimeError("stopped while starting")
                m.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, pass_fds=(wfd,),
                                          preexec_fn=_child_setup(os.getpid()))
        finally:
            os.close(wfd)
        try:
            port = _read_port(rfd, AGENT_READY_S)
        finally:
            os.close(rfd)
        if port is None:
            rc = _end(m.proc, True)
            raise RuntimeError(f"no port on --ready-fd (agent exit code {rc})")
        relay = Relay(port)
        with self.cond:
            if m.state != "starting":
                relay.close()
                return
            m.relay, m.fingerprint = relay, fp
            m.state = m.phase = "ready"
            self.cond.notify_all()


def _read_port(fd, timeout):
    """The port the agent writes on --ready-fd, or None (EOF or timeout)."""
    import select
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 64)
        if not chunk:
            return None
        buf += chunk
    try:
        return int(buf.split(b"\n")[0])
    except ValueError:
        return None


def _end(proc, kill):
    """Stop proc (SIGTERM, SIGKILL after 5 s; SIGKILL at once if kill); its
    exit code."""
    try:
        if kill:
            proc.kill()
        else:
            proc.terminate()
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    except OSError:
        return proc.poll()


# -- HTTP ---------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tremote-standin/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("standin: " + (fmt % args) + "\n")

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > BODY_MAX:
                    raise HttpError(413, f"the body is larger than {BODY_MAX} bytes")
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            raise HttpError(413, f"the body is larger than {BODY_MAX} bytes")
        return self.rfile.read(n) if n > 0 else b""

    def _answer(self, status, body, headers=()):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        st = self.server.standin
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH") else b""
            if (self.headers.get("Modal-Key") is None
                    or self.headers.get("Modal-Secret") is None):
                raise HttpError(401, "modal-http: missing credentials for proxy authorization")
            if (self.headers.get("Modal-Key") != self.server.token_id
                    or self.headers.get("Modal-Secret") != self.server.token_secret):
                raise HttpError(401, "modal-http: invalid credentials for proxy authorization")
            if parts == ["v1", "health"] and method == "GET":
                res = 200, {"ok": True, "api": 1, "app": "tremote", "gpus": GPU_NAMES}
            elif parts == ["v1", "machines"] and method == "POST":
                res = st.create(body)
            elif parts == ["v1", "machines"] and method == "GET":
                res = st.list(q["owner"][-1] if "owner" in q else None)
            elif len(parts) == 3 and parts[:2] == ["v1", "machines"] and method == "GET":
                try:
                    wait = int(q.get("wait", ["0"])[-1])
                except ValueError:
                    wait = -1
                if not 0 <= wait <= WAIT_MAX_S:
                    raise HttpError(400, f"wait: must be an integer from 0 to "
                                    f"{WAIT_MAX_S} (seconds)")
                res = st.get(parts[2], wait)
            elif len(parts) == 3 and parts[:2] == ["v1", "machines"] and method == "DELETE":
                res = st.delete(parts[2])
            elif parts == ["standin", "config"] and method == "POST":
                res = st.config(body)
            elif len(parts) == 3 and parts[:2] == ["standin", "preempt"] and method == "POST":
                res = st.preempt(parts[2])
            else:
                raise HttpError(404 if method in ("GET", "POST", "DELETE") else 405,
                                f"no such endpoint: {method} {url.path}")
            self._answer(res[0], res[1])
        except HttpError as e:
            self._answer(e.status, e.body, e.headers)
        except (ValueError, OSError) as e:
            self.close_connection = True
            try:
                self._answer(400, {"error": f"bad request: {e}"})
            except OSError:
                pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="standin.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the tremote Modal app's HTTP API v1 (docs/MODAL.md) on\n"
                    "loopback, with a real tremote-gpu-agent (emulated device) behind a\n"
                    "raw TCP relay per machine.  Prints 'standin listening on HOST:PORT'\n"
                    "once it serves.",
        epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--agent", required=True, help="the tremote-gpu-agent binary")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where to serve HTTP (default 127.0.0.1:0: a free port)")
    p.add_argument("--port-file", metavar="FILE",
                   help="write the port here once listening")
    p.add_argument("--token-id", default="wk-standin",
                   help="the Modal-Key to expect (default wk-standin)")
    p.add_argument("--token-secret", default="ws-standin",
                   help="the Modal-Secret to expect (default ws-standin)")
    p.add_argument("--agent-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for every agent (repeatable; write "
                        "--agent-arg=--emu-mem=1G for an option)")
    p.add_argument("--start-delay", type=float, default=0.0, metavar="S",
                   help="seconds each machine stays starting before its agent "
                        "starts (default 0; POST /standin/config changes it)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    a = p.parse_args(argv)
    if not os.access(a.agent, os.X_OK):
        p.error(f"--agent {a.agent}: not an executable file")
    host, _, port = a.listen.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"--listen {a.listen}: want HOST:PORT")
    a.host, a.port = host.strip("[]"), int(port)
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = tempfile.mkdtemp(prefix="tremote-standin-")
    standin = Standin(os.path.abspath(a.agent), a.agent_arg, a.start_delay, workdir)
    srv = Server((a.host, a.port), Handler)
    srv.standin, srv.verbose = standin, a.verbose
    srv.token_id, srv.token_secret = a.token_id, a.token_secret

    def on_signal(signum, frame):
        # shutdown() waits for serve_forever, which runs in this thread
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        port = srv.server_address[1]
        if a.port_file:
            tmp = a.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.replace(tmp, a.port_file)
        print(f"standin listening on {a.host}:{port}", flush=True)
        srv.serve_forever(poll_interval=0.2)
    finally:
        standin.stop_all()
        srv.server_close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
