#!/usr/bin/env python3
"""tools/modal/standin.py with the real tremote-gpu-agent: proxy auth, the
API's answers, a machine long-polled to ready and reached with TLS (ALPN h2)
through its relay, pinned by the fingerprint the stand-in answered, the h2
preface accepted; the knobs (503s, a slow start, a failed start,
preemption), DELETE, --exit-idle passed on, and no agent left behind when
the stand-in stops or is killed.

Usage: test_standin.py AGENT [SOURCE_DIR]   (AGENT: tremote-gpu-agent)
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: test_standin.py AGENT [SOURCE_DIR]")
AGENT = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("-")
                      else os.path.join(os.path.dirname(__file__), "..", ".."))
STANDIN = os.path.join(SRC, "tools", "modal", "standin.py")
TOKEN_ID, TOKEN_SECRET = "wk-test-1234", "ws-test-5678"
AUTH = {"Modal-Key": TOKEN_ID, "Modal-Secret": TOKEN_SECRET}
SECRET = "standinTestSecret0123456789abcdefXYZ"
OWNER = "0011223344556677"
GPUS = ["T4", "L4", "A10G", "A100-40GB", "A100-80GB", "L40S", "H100", "H200", "B200"]
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Sanitizer builds start the agent slowly.
SLOW = 3 if os.environ.get("TR_SANITIZE") else 1


def alive(pid):
    """pid runs (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def agents_of(pid):
    """The tremote-gpu-agent processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        if int(rest[1]) == pid and rest[0] != "Z" and argv0 == AGENT:
            out.append(int(d))
    return sorted(out)


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Standin:
    """One stand-in process."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="test-standin-")
        self.port_file = os.path.join(self.dir, "port")
        env = dict(os.environ, TMPDIR=self.dir)
        self.proc = subprocess.Popen(
            [sys.executable, STANDIN, "--agent", AGENT, "--port-file", self.port_file,
             "--token-id", TOKEN_ID, "--token-secret", TOKEN_SECRET,
             "--agent-arg=--emu-mem=256M", "--agent-arg=--log-level=warn", *extra],
            stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("standin listening on 127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"the stand-in did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        with open(self.port_file) as f:
            assert int(f.read()) == self.port, "--port-file disagrees"

    def request(self, method, path, body=None, headers=AUTH, timeout=90):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers)
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            return r.status, json.loads(raw), {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            subprocess.run(["rm", "-rf", self.dir])


def machine(mid, gpu="A100-40GB", **kw):
    b = {"machine_id": mid, "gpu": gpu, "secret": SECRET, "owner": OWNER,
         "timeout_s": 600, "idle_timeout_s": 0}
    b.update(kw)
    return b


def tls_connect(host, port, timeout=10):
    """TLS with ALPN h2 and no CA to host:port; (ssl socket, SHA256:hex of
    the peer's certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="tremote-agent")
    der = s.getpeercert(binary_form=True)
    return s, "SHA256:" + hashlib.sha256(der).hexdigest()


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def h2_settings_answer(s):
    """Send the client preface and an empty SETTINGS frame; the server's
    first frame (length, type, flags, stream)."""
    s.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    head = read_exact(s, 9)
    length = int.from_bytes(head[:3], "big")
    read_exact(s, length)
    return length, head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF


class StandinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Standin()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def setUp(self):
        self.call = self.s.request

    def tearDown(self):
        st, cfg, _ = self.call("POST", "/standin/config",
                               {"start_delay_s": 0, "capacity": 0, "fail_next": None,
                                "retry_after_s": 30})
        self.assertEqual(st, 200, cfg)

    def ready(self, mid, **kw):
        st, m, _ = self.call("POST", "/v1/machines", machine(mid, **kw))
        self.assertIn(st, (200, 201), m)
        deadline = time.monotonic() + 60 * SLOW
        while m["state"] == "starting" and time.monotonic() < deadline:
            st, m, _ = self.call("GET", f"/v1/machines/{mid}?wait=25")
            self.assertEqual(st, 200, m)
        self.assertEqual(m["state"], "ready", m)
        return m

    def test_auth(self):
        for headers in ({}, {"Modal-Key": TOKEN_ID}, {"Modal-Secret": TOKEN_SECRET},
                        {"Modal-Key": TOKEN_ID, "Modal-Secret": "ws-wrong"},
                        {"Modal-Key": "wk-wrong", "Modal-Secret": TOKEN_SECRET}):
            with self.subTest(headers=headers):
                st, e, _ = self.call("GET", "/v1/health", headers=headers)
                self.assertEqual(st, 401)
                self.assertIn("error", e)
                st, e, _ = self.call("POST", "/v1/machines", machine("m-noauth"),
                                     headers=headers)
                self.assertEqual(st, 401)
        st, e, _ = self.call("GET", "/v1/machines/m-noauth")
        self.assertEqual(st, 404, "an unauthenticated POST made a machine")
        st, b, _ = self.call("GET", "/v1/health")
        self.assertEqual((st, b), (200, {"ok": True, "api": 1, "app": "tremote",
                                         "gpus": GPUS}))

    def test_validation(self):
        st, e, _ = self.call("POST", "/v1/machines", machine("m-val", gpu="A100"))
        self.assertEqual((st, e["error"], e["valid"]), (400, "unknown GPU type 'A100'", GPUS))
        for b, field in ((machine("M-UPPER"), "machine_id"),
                         (machine("m-val", secret="short"), "secret"),
                         (machine("m-val", owner=""), "owner"),
                         (machine("m-val", timeout_s=10), "timeout_s"),
                         (machine("m-val", idle_timeout_s=-5), "idle_timeout_s"),
                         (b"{nope", "JSON")):
            with self.subTest(field=field):
                st, e, _ = self.call("POST", "/v1/machines", b)
                self.assertEqual(st, 400, e)
                self.assertIn(field, e["error"])
        st, e, _ = self.call("GET", "/v1/machines/m-val?wait=61")
        self.assertEqual(st, 400, e)
        st, e, _ = self.call("GET", "/v1/machines/m-val")
        self.assertEqual(st, 404, e)
        st, e, _ = self.call("GET", "/v1/nothing")
        self.assertEqual(st, 404, e)

    def test_ready_tls_through_relay(self):
        st, m, _ = self.call("POST", "/v1/machines", machine("modal-h100-0000beef", gpu="h100"))
        self.assertEqual(st, 201, m)
        self.assertEqual((m["gpu"], m["modal_gpu"], m["state"]), ("H100", "H100!", "starting"))
        st, again, _ = self.call("POST", "/v1/machines", machine("modal-h100-0000beef", gpu="H100"))
        self.assertEqual(st, 200, again)
        self.assertEqual(again["sandbox_id"], m["sandbox_id"])
        st, e, _ = self.call("POST", "/v1/machines", machine("modal-h100-0000beef", gpu="T4"))
        self.assertEqual(st, 409, e)

        m = self.ready("modal-h100-0000beef", gpu="H100")
        self.assertEqual(m["host"], "127.0.0.1")
        self.assertRegex(m["fingerprint"], r"^SHA256:[0-9a-f]{64}$")
        agents = agents_of(self.s.proc.pid)
        self.assertTrue(agents, "no agent process under the stand-in")
        s, fp = tls_connect(m["host"], m["port"])
        with s:
            self.assertEqual(fp, m["fingerprint"], "the relay's peer is not the pinned agent")
            self.assertEqual(s.selected_alpn_protocol(), "h2")
            length, ftype, flags, stream = h2_settings_answer(s)
            self.assertEqual((ftype, stream), (0x4, 0), "the first frame is not SETTINGS")
            self.assertEqual(flags & 0x1, 0, "SETTINGS ACK before the server's SETTINGS")
        # a second connection through the same relay works too
        s, fp2 = tls_connect(m["host"], m["port"])
        with s:
            self.assertEqual(fp2, m["fingerprint"])
            self.assertEqual(h2_settings_answer(s)[1], 0x4)

        st, b, _ = self.call("GET", f"/v1/machines?owner={OWNER}")
        self.assertEqual(st, 200)
        self.assertIn("modal-h100-0000beef", [x["machine_id"] for x in b["machines"]])
        st, b, _ = self.call("GET", "/v1/machines?owner=someone-else")
        self.assertEqual(b, {"machines": []})

        st, b, _ = self.call("DELETE", "/v1/machines/modal-h100-0000beef")
        self.assertEqual((st, b), (200, {"machine_id": "modal-h100-0000beef", "state": "stopped"}))
        self.assertTrue(wait_for(lambda: not any(alive(p) for p in agents), 10),
                        "the agent outlived DELETE")
        with self.assertRaises(OSError):
            socket.create_connection((m["host"], m["port"]), timeout=5).close()
        st, m2, _ = self.call("GET", "/v1/machines/modal-h100-0000beef?wait=5")
        self.assertEqual((m2["state"], m2["why"]), ("stopped", "deleted"))
        for k in ("host", "port", "fingerprint"):
            self.assertNotIn(k, m2)
        for mid in ("modal-h100-0000beef", "never-made"):
            st, b, _ = self.call("DELETE", f"/v1/machines/{mid}")
            self.assertEqual((st, b), (200, {"machine_id": mid, "state": "stopped"}))

    def test_capacity(self):
        st, cfg, _ = self.call("POST", "/standin/config", {"capacity": 2})
        self.assertEqual((st, cfg["capacity"]), (200, 2))
        for _ in range(2):
            st, e, h = self.call("POST", "/v1/machines", machine("m-cap", gpu="L4"))
            self.assertEqual(st, 503, e)
            self.assertEqual(e["retry_after_s"], 30)
            self.assertEqual(h["retry-after"], "30")
            self.assertIn("L4", e["error"])
        st, m, _ = self.call("POST", "/v1/machines", machine("m-cap", gpu="L4"))
        self.assertEqual(st, 201, m)
        self.call("POST", "/standin/config", {"capacity": -1, "retry_after_s": 1})
        for _ in range(3):
            st, e, h = self.call("POST", "/v1/machines", machine("m-cap2"))
            self.assertEqual(st, 503, e)
            self.assertEqual((e["retry_after_s"], h["retry-after"]), (1, "1"))
        st, cfg, _ = self.call("POST", "/standin/config", {"capacity": 0})
        self.assertEqual(cfg, {"start_delay_s": 0, "capacity": 0, "fail_next": None,
                               "retry_after_s": 1})
        st, m, _ = self.call("POST", "/v1/machines", machine("m-cap2"))
        self.assertEqual(st, 201, m)
        self.call("DELETE", "/v1/machines/m-cap2")
        st, e, _ = self.call("POST", "/standin/config", {"bogus": 1})
        self.assertEqual(st, 400, e)
        self.assertIn("retry_after_s", e["error"])
        st, e, _ = self.call("POST", "/standin/config", {"capacity": "lots"})
        self.assertEqual(st, 400, e)
        self.call("DELETE", "/v1/machines/m-cap")

    def test_slow_start(self):
        self.call("POST", "/standin/config", {"start_delay_s": 3})
        st, m, _ = self.call("POST", "/v1/machines", machine("m-slow"))
        self.assertEqual((st, m["state"], m["phase"], m["elapsed_s"]),
                         (201, "starting", "scheduling", 0))
        t0 = time.monotonic()
        st, m, _ = self.call("GET", "/v1/machines/m-slow?wait=2")
        self.assertGreaterEqual(time.monotonic() - t0, 1.9, "the long poll did not wait")
        self.assertEqual(m["state"], "starting")
        self.assertEqual(m["phase"], "image")
        self.assertGreaterEqual(m["elapsed_s"], 1)
        self.assertEqual(agents_of(self.s.proc.pid), [], "an agent started before the delay")
        st, m2, _ = self.call("GET", "/v1/machines/m-slow?wait=30")
        self.assertEqual(m2["state"], "ready", m2)
        self.assertGreaterEqual(m2["elapsed_s"], m["elapsed_s"])
        self.call("DELETE", "/v1/machines/m-slow")

    def test_fail_next(self):
        self.call("POST", "/standin/config", {"fail_next": "no H200 today"})
        st, m, _ = self.call("POST", "/v1/machines", machine("m-fail", gpu="H200"))
        self.assertEqual(st, 201, m)
        st, m, _ = self.call("GET", "/v1/machines/m-fail?wait=20")
        self.assertEqual((m["state"], m["why"]), ("failed", "no H200 today"))
        # only the next one
        m = self.ready("m-fail2")
        self.call("DELETE", "/v1/machines/m-fail2")
        # a failed machine's ID may be asked for again
        m = self.ready("m-fail", gpu="H200")
        self.call("DELETE", "/v1/machines/m-fail")

    def test_preempt(self):
        m = self.ready("m-pre")
        before = set(agents_of(self.s.proc.pid))
        s, fp = tls_connect(m["host"], m["port"])
        self.assertEqual(fp, m["fingerprint"])
        st, p, _ = self.call("POST", "/standin/preempt/m-pre")
        self.assertEqual((st, p["state"], p["why"]), (200, "stopped", "preempted"))
        with s:
            # what the agent sent before (its SETTINGS) may still be read;
            # then the relay's close must end the stream
            s.settimeout(10)
            ended = False
            try:
                for _ in range(1000):
                    if not s.recv(65536):
                        ended = True
                        break
            except TimeoutError:
                ended = False
            except (OSError, ssl.SSLError):
                ended = True  # reset, or EOF inside a record
            self.assertTrue(ended, "the connection outlived the preemption")
        self.assertTrue(wait_for(lambda: set(agents_of(self.s.proc.pid)) < before, 10),
                        "the agent outlived the preemption")
        with self.assertRaises(OSError):
            socket.create_connection((m["host"], m["port"]), timeout=5).close()
        st, m, _ = self.call("GET", "/v1/machines/m-pre?wait=10")
        self.assertEqual((m["state"], m["why"]), ("stopped", "preempted"))
        st, e, _ = self.call("POST", "/standin/preempt/nobody")
        self.assertEqual(st, 404, e)
        # a preempted machine may be asked for again
        m = self.ready("m-pre")
        self.call("DELETE", "/v1/machines/m-pre")

    def test_exit_idle(self):
        m = self.ready("m-idle", idle_timeout_s=1)
        st, m, _ = self.call("GET", "/v1/machines/m-idle")
        deadline = time.monotonic() + 30 * SLOW
        while m["state"] == "ready" and time.monotonic() < deadline:
            time.sleep(0.2)
            st, m, _ = self.call("GET", "/v1/machines/m-idle")
        self.assertEqual((m["state"], m["exit_code"]), ("stopped", 0), m)
        self.assertIn("exited", m["why"])


class StopTest(unittest.TestCase):
    def start_two(self):
        s = Standin()
        for mid in ("m-stop1", "m-stop2"):
            st, m, _ = s.request("POST", "/v1/machines", machine(mid))
            self.assertEqual(st, 201, m)
            st, m, _ = s.request("GET", f"/v1/machines/{mid}?wait=30")
            self.assertEqual(m["state"], "ready", m)
        agents = agents_of(s.proc.pid)
        self.assertEqual(len(agents), 2, agents)
        return s, agents

    def test_sigterm_stops_every_agent(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig):
                s, agents = self.start_two()
                self.assertEqual(s.stop(sig), 0)
                self.assertTrue(wait_for(lambda: not any(alive(p) for p in agents), 10),
                                f"agents left after the stand-in stopped: {agents}")

    def test_crash_leaves_no_agent(self):
        s, agents = self.start_two()
        self.assertEqual(s.stop(signal.SIGKILL), -signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not any(alive(p) for p in agents), 10),
                        f"agents outlived a killed stand-in: {agents}")


if __name__ == "__main__":
    if not os.access(AGENT, os.X_OK):
        sys.exit(f"test_standin: {AGENT}: not an executable")
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[2:] if a.startswith("-")],
                  verbosity=2)
