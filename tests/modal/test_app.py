#!/usr/bin/env python3
"""tools/modal/tremote_modal.py, the Modal app, without Modal: its
ModalBackend is replaced by an in-memory fake and its ASGI app is driven
directly.  When the real `modal` package is importable it is used, so the
app's decorators are really applied; else a minimal stand-in module gives
the few names the app uses at import time.

Usage: test_app.py [SOURCE_DIR]   (default: this file's ../..)
"""

import asyncio
import importlib.util
import json
import os
import sys
import time
import types
import unittest

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
                      else os.path.join(os.path.dirname(__file__), "..", ".."))
APP_FILE = os.path.join(SRC, "tools", "modal", "tremote_modal.py")

ASGI_KWARGS = []   # what the app passed to modal.asgi_app


def _recording(deco):
    def wrapper(*args, **kwargs):
        ASGI_KWARGS.append(kwargs)
        return deco(*args, **kwargs)
    return wrapper


try:
    import modal  # noqa: F401
    REAL_MODAL = True
    modal.asgi_app = _recording(modal.asgi_app)
except ImportError:
    REAL_MODAL = False
    fake = types.ModuleType("modal")

    class _App:
        def __init__(self, name=None, **kw):
            self.name, self.app_id = name, None

        def function(self, **kw):
            return lambda f: f

    class _Image:
        @staticmethod
        def debian_slim(*a, **kw):
            return _Image()

    fake.App = _App
    fake.Image = _Image
    fake.concurrent = lambda **kw: (lambda f: f)
    fake.asgi_app = _recording(lambda **kw: (lambda f: f))
    sys.modules["modal"] = fake

spec = importlib.util.spec_from_file_location("tremote_modal", APP_FILE)
tm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tm)

GPU_TABLE = ["T4", "L4", "A10G", "A100-40GB", "A100-80GB", "L40S", "H100", "H200", "B200"]
SECRET = "0123456789abcdef0123456789ABCDEF"
OWNER_A = "0123456789abcdef"
OWNER_B = "fedcba9876543210"
GEN_CERT_OUT = ("/run/tremote-tls/cert.pem SHA256:{fp}\n"
                "Start the agent with --tls-cert /run/tremote-tls/cert.pem --tls-key "
                "/run/tremote-tls/key.pem,\nand pin it in the broker's machines file: "
                "tls = on, fingerprint = SHA256:{fp}\n")
FP = "9fc04491c50a50075330e32b1ef174f266f191c6573d37b00a4dcbbc07aa8cb5"


class FakeBackend:
    """ModalBackend's interface over dicts: Sandboxes and the registry."""

    instances = []

    def __init__(self, app_obj=None):
        self.records = {}
        self.sandboxes = {}
        self.no_capacity = False
        self.creates = []
        FakeBackend.instances.append(self)

    async def create(self, mid, modal_gpu, secret, tags, timeout_s, idle_timeout_s):
        self.creates.append(dict(machine_id=mid, modal_gpu=modal_gpu, secret=secret,
                                 tags=dict(tags), timeout_s=timeout_s,
                                 idle_timeout_s=idle_timeout_s))
        if self.no_capacity:
            raise tm.NoCapacity("ResourceExhaustedError: no capacity")
        sid = await self.find(mid)
        if sid:
            raise tm.AlreadyRunning(sid)
        sid = f"sb-fake{len(self.sandboxes) + 1}"
        self.sandboxes[sid] = dict(name=mid, tags=dict(tags), stdout="", rc=None,
                                   tunnel=None, gpu=modal_gpu)
        return sid

    async def find(self, mid):
        for sid, sb in self.sandboxes.items():
            if sb["name"] == mid and sb["rc"] is None:
                return sid
        return None

    async def tags(self, sid):
        return dict(self.sandboxes[sid]["tags"])

    async def poll(self, sid):
        if sid not in self.sandboxes:
            raise tm.Gone(sid)
        return self.sandboxes[sid]["rc"]

    async def _until(self, cond, timeout):
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            await asyncio.sleep(0.02)
        return cond()

    async def tunnel(self, sid, timeout):
        sb = self.sandboxes[sid]
        await self._until(lambda: sb["tunnel"] is not None, timeout)
        return sb["tunnel"]

    async def stdout(self, sid, pattern, timeout):
        sb = self.sandboxes[sid]
        await self._until(lambda: pattern.search(sb["stdout"]), timeout)
        return sb["stdout"]

    async def terminate(self, sid):
        sb = self.sandboxes.get(sid)
        if sb is not None and sb["rc"] is None:
            sb["rc"] = 0
            sb["terminated"] = True

    async def list_sandboxes(self, owner):
        return [(sid, dict(sb["tags"])) for sid, sb in self.sandboxes.items()
                if sb["rc"] is None and (owner is None or sb["tags"].get("tremote.owner") == owner)]

    async def rec_get(self, mid):
        r = self.records.get(mid)
        return json.loads(json.dumps(r)) if r is not None else None

    async def rec_put(self, mid, rec):
        self.records[mid] = json.loads(json.dumps(rec))

    async def rec_pop(self, mid):
        self.records.pop(mid, None)

    async def rec_items(self):
        return [(k, json.loads(json.dumps(v))) for k, v in self.records.items()]

    # the test's hands on a Sandbox
    def boot(self, sid, host="r3.modal.host", port=41234, tunnel=True, fingerprint=True):
        sb = self.sandboxes[sid]
        if tunnel:
            sb["tunnel"] = (host, port)
        if fingerprint:
            sb["stdout"] += GEN_CERT_OUT.format(fp=FP)


def the_asgi_app():
    """The app's own factory (the function under @modal.asgi_app), with
    ModalBackend replaced by the fake; (asgi, backend)."""
    real = tm.ModalBackend
    tm.ModalBackend = FakeBackend
    try:
        asgi = (tm.api.local if REAL_MODAL else tm.api)()
    finally:
        tm.ModalBackend = real
    return asgi, FakeBackend.instances[-1]


async def acall(asgi, method, path, body=None, query=""):
    sent = []
    chunks = [] if body is None else [body if isinstance(body, bytes)
                                      else json.dumps(body).encode()]

    async def receive():
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": False}
        if method in ("POST",) and not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(),
             "headers": [(b"content-type", b"application/json")]}
    await asgi(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(data)
    return start["status"], json.loads(data), headers


def body(mid="modal-a10040gb-1a2b3c4d", gpu="A100-40GB", **kw):
    b = {"machine_id": mid, "gpu": gpu, "secret": SECRET, "owner": OWNER_A}
    b.update(kw)
    return {k: v for k, v in b.items() if v is not None}


class AppTest(unittest.TestCase):
    def setUp(self):
        self.asgi, self.be = the_asgi_app()

    def call(self, method, path, data=None, query=""):
        return asyncio.run(acall(self.asgi, method, path, data, query))

    def create(self, **kw):
        st, m, _ = self.call("POST", "/v1/machines", body(**kw))
        self.assertIn(st, (200, 201), m)
        return m

    # -- the module ----------------------------------------------------------

    def test_decorators(self):
        self.assertTrue(ASGI_KWARGS, "modal.asgi_app was not used")
        self.assertEqual(ASGI_KWARGS[-1].get("requires_proxy_auth"), True)
        self.assertEqual(ASGI_KWARGS[-1].get("label"), "tremote-api")
        if REAL_MODAL:
            import modal
            self.assertIsInstance(tm.api, modal.Function)
            if hasattr(tm.api, "_is_web_endpoint"):
                self.assertTrue(tm.api._is_web_endpoint())
            self.assertEqual(tm.app.name, "tremote")

    @unittest.skipUnless(REAL_MODAL, "the modal package is not installed")
    def test_modal_api_the_backend_uses(self):
        """Every Modal name and keyword ModalBackend and agent_image use
        exists in the installed modal package."""
        import dataclasses
        import inspect
        import tempfile
        import modal

        def params(f):
            return set(inspect.signature(f).parameters)

        self.assertLessEqual({"app", "name", "tags", "image", "gpu", "timeout", "secrets",
                              "unencrypted_ports"}, params(modal.Sandbox.create))
        self.assertLessEqual({"app_name", "name"}, params(modal.Sandbox.from_name))
        self.assertLessEqual({"sandbox_id"}, params(modal.Sandbox.from_id))
        self.assertLessEqual({"app_id", "tags"}, params(modal.Sandbox.list))
        self.assertIn("timeout", params(modal.Sandbox.tunnels))
        for f in (modal.Sandbox.create, modal.Sandbox.from_name, modal.Sandbox.from_id,
                  modal.Sandbox.list, modal.Sandbox.poll, modal.Sandbox.tunnels,
                  modal.Sandbox.terminate, modal.Sandbox.get_tags, modal.App.lookup,
                  modal.Dict.get, modal.Dict.put, modal.Dict.pop, modal.Dict.items):
            self.assertTrue(hasattr(f, "aio"), f"{f} has no .aio")
        self.assertTrue(hasattr(modal.io_streams.StreamReader, "__aiter__"))
        self.assertIn("create_if_missing", params(modal.App.lookup))
        self.assertIn("create_if_missing", params(modal.Dict.from_name))
        self.assertIn("copy", params(modal.Image.add_local_dir))
        for name in ("from_name", "from_registry", "publish", "build", "debian_slim"):
            self.assertTrue(hasattr(modal.Image, name), f"modal.Image.{name}")
        self.assertLessEqual({"unencrypted_host", "unencrypted_port"},
                             {f.name for f in dataclasses.fields(modal.Tunnel)})
        for name in ("ResourceExhaustedError", "AlreadyExistsError", "NotFoundError",
                     "SandboxTimeoutError"):
            self.assertTrue(issubclass(getattr(modal.exception, name), Exception), name)
        modal.Secret.from_dict({"TREMOTE_SECRET": SECRET})
        with tempfile.TemporaryDirectory() as d:
            self.assertIsInstance(tm.agent_image(d), modal.Image)

    def test_sandbox_script(self):
        s = tm.sandbox_script(600)
        self.assertIn("umask 077", s)
        self.assertIn('printf %s "$TREMOTE_SECRET" > /run/tremote.secret', s)
        self.assertIn("mkdir -p /run/tremote-tls", s)
        self.assertIn("tremote-gpu-agent --gen-cert /run/tremote-tls", s)
        flat = " ".join(s.replace("\\\n", " ").split())
        self.assertIn("exec tremote-gpu-agent --listen 0.0.0.0:7070 --backend cuda "
                      "--tls-cert /run/tremote-tls/cert.pem --tls-key "
                      "/run/tremote-tls/key.pem --secret-file /run/tremote.secret "
                      "--exit-idle 600", flat)
        self.assertIn("--exit-idle 0", tm.sandbox_script(0))
        self.assertEqual(tm.FINGERPRINT_RE.search(GEN_CERT_OUT.format(fp=FP)).group(1),
                         "SHA256:" + FP)

    def test_gpu_table(self):
        self.assertEqual(tm.GPU_NAMES, GPU_TABLE)
        for name in GPU_TABLE:
            self.assertEqual(tm.canonical_gpu(name.lower()), name)
        self.assertIsNone(tm.canonical_gpu("A100"))

    # -- the API -------------------------------------------------------------

    def test_health(self):
        st, b, _ = self.call("GET", "/v1/health")
        self.assertEqual(st, 200)
        self.assertEqual(b, {"ok": True, "api": 1, "app": "tremote", "gpus": GPU_TABLE})

    def test_create_idempotent_conflict(self):
        st, m, _ = self.call("POST", "/v1/machines",
                             body(mid="modal-a10g-00000001", gpu="a10g"))
        self.assertEqual(st, 201, m)
        self.assertEqual(m["machine_id"], "modal-a10g-00000001")
        self.assertEqual(m["gpu"], "A10G")
        self.assertEqual(m["modal_gpu"], "A10")
        self.assertEqual(m["owner"], OWNER_A)
        self.assertEqual(m["state"], "starting")
        self.assertEqual(m["phase"], "scheduling")
        self.assertIsNone(m["exit_code"])
        self.assertTrue(m["sandbox_id"].startswith("sb-"))
        for k in ("host", "port", "fingerprint"):
            self.assertNotIn(k, m)
        c = self.be.creates[-1]
        self.assertEqual(c["modal_gpu"], "A10")
        self.assertEqual(c["secret"], SECRET)
        self.assertEqual(c["timeout_s"], 3600)
        self.assertEqual(c["idle_timeout_s"], 600)
        self.assertEqual(c["tags"], {"tremote.machine": "modal-a10g-00000001",
                                     "tremote.owner": OWNER_A, "tremote.gpu": "A10G"})
        # the same again: 200, the same Sandbox, nothing created
        st, m2, _ = self.call("POST", "/v1/machines",
                              body(mid="modal-a10g-00000001", gpu="A10G"))
        self.assertEqual(st, 200, m2)
        self.assertEqual(m2["sandbox_id"], m["sandbox_id"])
        self.assertEqual(len(self.be.creates), 1)
        # another gpu: 409
        st, e, _ = self.call("POST", "/v1/machines",
                             body(mid="modal-a10g-00000001", gpu="H100"))
        self.assertEqual(st, 409, e)
        self.assertIn("A10G", e["error"])
        self.assertEqual(len(self.be.creates), 1)
        # explicit lifetimes are passed on
        self.create(mid="m-times", gpu="H100", timeout_s=60, idle_timeout_s=0)
        c = self.be.creates[-1]
        self.assertEqual((c["modal_gpu"], c["timeout_s"], c["idle_timeout_s"]),
                         ("H100!", 60, 0))

    def test_create_after_stop_is_new(self):
        m = self.create(mid="m-again")
        self.be.sandboxes[m["sandbox_id"]]["rc"] = 1
        st, m2, _ = self.call("POST", "/v1/machines", body(mid="m-again", gpu="T4"))
        self.assertEqual(st, 201, m2)
        self.assertNotEqual(m2["sandbox_id"], m["sandbox_id"])
        self.assertEqual(m2["gpu"], "T4")

    def test_create_race_adopts_running_sandbox(self):
        # a Sandbox of that name runs, but the registry lost it
        m = self.create(mid="m-race")
        self.be.records.clear()
        st, m2, _ = self.call("POST", "/v1/machines", body(mid="m-race"))
        self.assertEqual(st, 200, m2)
        self.assertEqual(m2["sandbox_id"], m["sandbox_id"])
        st, e, _ = self.call("POST", "/v1/machines", body(mid="m-race", gpu="L4"))
        self.assertEqual(st, 409, e)

    def test_bad_gpu(self):
        st, e, _ = self.call("POST", "/v1/machines", body(gpu="A100"))
        self.assertEqual(st, 400)
        self.assertEqual(e["error"], "unknown GPU type 'A100'")
        self.assertEqual(e["valid"], GPU_TABLE)
        st, e, _ = self.call("POST", "/v1/machines", body(gpu=None))
        self.assertEqual(st, 400)
        self.assertIn("gpu", e["error"])
        self.assertEqual(e["valid"], GPU_TABLE)
        st, e, _ = self.call("POST", "/v1/machines", body(gpu=7))
        self.assertEqual(st, 400)
        self.assertEqual(e["valid"], GPU_TABLE)
        self.assertEqual(self.be.creates, [])

    def test_bad_fields(self):
        cases = [
            (body(mid="Upper-case"), "machine_id"),
            (body(mid=""), "machine_id"),
            (body(mid="a" * 32), "machine_id"),
            (body(mid=None), "machine_id"),
            (body(mid="a_b"), "machine_id"),
            (body(secret="0123456789abcdef"), "secret"),
            (body(secret=SECRET + "!"), "secret"),
            (body(secret="a" * 257), "secret"),
            (body(secret=None), "secret"),
            (body(owner=None), "owner"),
            (body(owner=""), "owner"),
            (body(owner="has space"), "owner"),
            (body(timeout_s=59), "timeout_s"),
            (body(timeout_s=86401), "timeout_s"),
            (body(timeout_s="600"), "timeout_s"),
            (body(timeout_s=True), "timeout_s"),
            (body(timeout_s=600.5), "timeout_s"),
            (body(idle_timeout_s=-1), "idle_timeout_s"),
            (body(idle_timeout_s=86401), "idle_timeout_s"),
        ]
        for b, field in cases:
            with self.subTest(body=b):
                st, e, _ = self.call("POST", "/v1/machines", b)
                self.assertEqual(st, 400, e)
                self.assertIn(field, e["error"])
                self.assertEqual(list(e), ["error"])
        for raw in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
            with self.subTest(raw=raw):
                st, e, _ = self.call("POST", "/v1/machines", raw)
                self.assertEqual(st, 400, e)
                self.assertIn("JSON", e["error"])
        st, e, _ = self.call("POST", "/v1/machines", b"{" + b" " * 70000 + b"}")
        self.assertEqual(st, 413, e)
        self.assertEqual(self.be.creates, [])
        # the limits themselves are valid
        self.create(mid="a" * 31, secret="a" * 256, timeout_s=86400, idle_timeout_s=86400)
        self.create(mid="b", secret="a" * 32, timeout_s=60, idle_timeout_s=0)

    def test_capacity(self):
        self.be.no_capacity = True
        st, e, h = self.call("POST", "/v1/machines", body())
        self.assertEqual(st, 503, e)
        self.assertEqual(e["retry_after_s"], 30)
        self.assertIn("A100-40GB", e["error"])
        self.assertEqual(h["retry-after"], "30")
        st, _, _ = self.call("GET", "/v1/machines/" + body()["machine_id"])
        self.assertEqual(st, 404)
        self.be.no_capacity = False
        st, m, _ = self.call("POST", "/v1/machines", body())
        self.assertEqual(st, 201, m)

    def test_wait_long_poll(self):
        m = self.create()
        mid, sid = m["machine_id"], m["sandbox_id"]
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=0")
        self.assertEqual((st, m["state"], m["phase"]), (200, "starting", "scheduling"))
        for k in ("host", "port", "fingerprint"):
            self.assertNotIn(k, m)

        # tunnel known, agent not yet: phase agent; a wait of 1 s is kept
        self.be.boot(sid, fingerprint=False)
        t0 = time.monotonic()
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=1")
        took = time.monotonic() - t0
        self.assertEqual((st, m["state"], m["phase"]), (200, "starting", "agent"))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 5)
        self.assertNotIn("host", m)

        async def later():
            await asyncio.sleep(0.3)
            self.be.boot(sid)

        async def both():
            got = await asyncio.gather(
                acall(self.asgi, "GET", f"/v1/machines/{mid}", query="wait=20"), later())
            return got[0]

        t0 = time.monotonic()
        st, m, _ = asyncio.run(both())
        took = time.monotonic() - t0
        self.assertEqual(st, 200)
        self.assertEqual(m["state"], "ready", m)
        self.assertEqual(m["phase"], "ready")
        self.assertEqual(m["host"], "r3.modal.host")
        self.assertEqual(m["port"], 41234)
        self.assertEqual(m["fingerprint"], "SHA256:" + FP)
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 5)
        # ready is remembered, and a ready machine answers at once
        self.be.sandboxes[sid]["stdout"] = ""
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=60")
        self.assertEqual((m["state"], m["fingerprint"]), ("ready", "SHA256:" + FP))
        # it ends: stopped, with the exit code
        self.be.sandboxes[sid]["rc"] = 3
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=60")
        self.assertEqual((m["state"], m["exit_code"]), ("stopped", 3))
        self.assertIn("3", m["why"])
        for k in ("host", "port", "fingerprint"):
            self.assertNotIn(k, m)

    def test_failed_before_ready(self):
        m = self.create()
        self.be.sandboxes[m["sandbox_id"]]["rc"] = 2
        st, m, _ = self.call("GET", f"/v1/machines/{m['machine_id']}", query="wait=5")
        self.assertEqual((st, m["state"], m["exit_code"]), (200, "failed", 2))
        self.assertIn("before the agent was ready", m["why"])
        # Modal forgets a Sandbox: failed too, not an error
        m = self.create(mid="m-gone")
        del self.be.sandboxes[m["sandbox_id"]]
        st, m, _ = self.call("GET", "/v1/machines/m-gone")
        self.assertEqual((st, m["state"]), (200, "failed"))

    def test_wait_param(self):
        m = self.create()
        for q in ("wait=61", "wait=-1", "wait=abc", "wait=1.5"):
            with self.subTest(q=q):
                st, e, _ = self.call("GET", f"/v1/machines/{m['machine_id']}", query=q)
                self.assertEqual(st, 400, e)
                self.assertIn("wait", e["error"])

    def test_list_by_owner(self):
        self.create(mid="m-a1")
        self.create(mid="m-a2", gpu="T4")
        self.create(mid="m-b1", owner=OWNER_B)
        # a Sandbox of owner A the registry does not know (listed by tags)
        self.be.sandboxes["sb-orphan"] = dict(
            name="m-a3", rc=None, tunnel=None, stdout="", gpu="L4",
            tags={"tremote.machine": "m-a3", "tremote.owner": OWNER_A, "tremote.gpu": "L4"})
        st, b, _ = self.call("GET", "/v1/machines", query="owner=" + OWNER_A)
        self.assertEqual(st, 200)
        self.assertEqual([m["machine_id"] for m in b["machines"]], ["m-a1", "m-a2", "m-a3"])
        self.assertTrue(all(m["owner"] == OWNER_A for m in b["machines"]))
        self.assertEqual(b["machines"][1]["gpu"], "T4")
        self.assertEqual(b["machines"][2]["sandbox_id"], "sb-orphan")
        st, b, _ = self.call("GET", "/v1/machines", query="owner=" + OWNER_B)
        self.assertEqual([m["machine_id"] for m in b["machines"]], ["m-b1"])
        st, b, _ = self.call("GET", "/v1/machines")
        self.assertEqual(len(b["machines"]), 4)
        st, b, _ = self.call("GET", "/v1/machines", query="owner=nobody")
        self.assertEqual(b, {"machines": []})

    def test_delete(self):
        m = self.create()
        mid, sid = m["machine_id"], m["sandbox_id"]
        st, b, _ = self.call("DELETE", f"/v1/machines/{mid}")
        self.assertEqual((st, b), (200, {"machine_id": mid, "state": "stopped"}))
        self.assertTrue(self.be.sandboxes[sid].get("terminated"))
        st, b, _ = self.call("DELETE", f"/v1/machines/{mid}")
        self.assertEqual((st, b), (200, {"machine_id": mid, "state": "stopped"}))
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=10")
        self.assertEqual((st, m["state"], m["why"]), (200, "stopped", "deleted"))
        st, b, _ = self.call("DELETE", "/v1/machines/modal-t4-deadbeef")
        self.assertEqual((st, b), (200, {"machine_id": "modal-t4-deadbeef", "state": "stopped"}))
        # the orphan of a lost registry entry is found by name and ended
        m = self.create(mid="m-orphan")
        self.be.records.pop("m-orphan")
        self.call("DELETE", "/v1/machines/m-orphan")
        self.assertTrue(self.be.sandboxes[m["sandbox_id"]].get("terminated"))
        # and after a delete the same ID makes a new machine
        st, m2, _ = self.call("POST", "/v1/machines", body(mid=mid))
        self.assertEqual(st, 201, m2)
        self.assertNotEqual(m2["sandbox_id"], sid)

    def test_not_found(self):
        st, e, _ = self.call("GET", "/v1/machines/modal-t4-00000000")
        self.assertEqual(st, 404)
        self.assertIn("modal-t4-00000000", e["error"])
        st, e, _ = self.call("GET", "/v1/machines/BAD ID")
        self.assertEqual(st, 404)
        st, e, _ = self.call("GET", "/v2/health")
        self.assertEqual(st, 404)
        self.assertIn("error", e)
        st, e, h = self.call("PUT", "/v1/machines")
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "GET, POST")
        st, e, h = self.call("POST", "/v1/machines/x")
        self.assertEqual(st, 405)

    def test_backend_failure_is_one_line_500(self):
        async def boom(*a, **kw):
            raise RuntimeError("Modal said no\nsecond line")
        self.be.create = boom
        st, e, _ = self.call("POST", "/v1/machines", body())
        self.assertEqual(st, 500)
        self.assertEqual(e, {"error": "RuntimeError: Modal said no"})

    def test_lifespan(self):
        msgs = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent = []

        async def receive():
            return msgs.pop(0)

        async def send(m):
            sent.append(m["type"])

        asyncio.run(self.asgi({"type": "lifespan"}, receive, send))
        self.assertEqual(sent, ["lifespan.startup.complete", "lifespan.shutdown.complete"])


class _Aio:
    """A Modal function's shape: .aio is the coroutine."""

    def __init__(self, f):
        self.aio = f


class FakeModalSandbox:
    def __init__(self, sid, kw):
        self.object_id, self.kw = sid, kw
        self.rc, self.tunnel, self.chunks, self.terminated = None, None, [], False
        self.tags = dict(kw.get("tags") or {})

        async def poll():
            return self.rc

        async def tunnels(timeout=50):
            if self.tunnel is None:
                await asyncio.sleep(min(timeout, 0.05))
                raise FAKE_MODAL.exception.SandboxTimeoutError("no tunnel yet")
            return {7070: types.SimpleNamespace(host="x.modal.host", port=443,
                                                unencrypted_host=self.tunnel[0],
                                                unencrypted_port=self.tunnel[1])}

        async def terminate():
            self.terminated = True
            self.rc = 137

        async def get_tags():
            return dict(self.tags)

        self.poll, self.tunnels = _Aio(poll), _Aio(tunnels)
        self.terminate, self.get_tags = _Aio(terminate), _Aio(get_tags)

    @property
    def stdout(self):
        async def gen():
            i = 0
            while True:  # like Modal's: blocks until more output comes
                if i < len(self.chunks):
                    yield self.chunks[i]
                    i += 1
                else:
                    await asyncio.sleep(0.02)
        return gen()


def make_fake_modal():
    """What ModalBackend calls, shaped like the modal package."""
    m = types.SimpleNamespace()
    m.exception = types.SimpleNamespace(**{n: type(n, (Exception,), {}) for n in (
        "ResourceExhaustedError", "AlreadyExistsError", "NotFoundError",
        "SandboxTimeoutError")})
    m.sandboxes, m.creates, m.refuse = {}, [], None
    store = {}

    async def create(*args, **kw):
        m.creates.append((args, kw))
        if m.refuse:
            raise m.refuse
        for sb in m.sandboxes.values():
            if sb.kw.get("name") == kw.get("name") and sb.rc is None:
                raise m.exception.AlreadyExistsError("name in use")
        sb = FakeModalSandbox(f"sb-{len(m.sandboxes) + 1}", kw)
        m.sandboxes[sb.object_id] = sb
        return sb

    async def from_id(sid, client=None):
        if sid not in m.sandboxes:
            raise m.exception.NotFoundError(sid)
        return m.sandboxes[sid]

    async def from_name(app_name, name, **kw):
        for sb in m.sandboxes.values():
            if sb.kw.get("name") == name and sb.rc is None and app_name == "tremote":
                return sb
        raise m.exception.NotFoundError(name)

    async def list_(app_id=None, tags=None, client=None):
        for sb in list(m.sandboxes.values()):
            if sb.rc is None and all(sb.tags.get(k) == v for k, v in (tags or {}).items()):
                yield sb

    async def lookup(name, create_if_missing=False, **kw):
        return types.SimpleNamespace(app_id="ap-looked-up", name=name)

    async def dget(k, default=None):
        return store.get(k, default)

    async def dput(k, v, skip_if_exists=False):
        store[k] = v
        return True

    async def dpop(k, default=None):
        return store.pop(k, default)

    async def ditems():
        for kv in list(store.items()):
            yield kv

    m.Sandbox = types.SimpleNamespace(create=_Aio(create), from_id=_Aio(from_id),
                                      from_name=_Aio(from_name), list=_Aio(list_))
    m.App = types.SimpleNamespace(lookup=_Aio(lookup))
    m.Image = types.SimpleNamespace(from_name=lambda name, **kw: ("image", name))
    m.Secret = types.SimpleNamespace(from_dict=lambda d: ("secret", dict(d)))
    m.Dict = types.SimpleNamespace(from_name=lambda name, **kw: types.SimpleNamespace(
        get=_Aio(dget), put=_Aio(dput), pop=_Aio(dpop), items=_Aio(ditems), name=name,
        kw=kw))
    return m


FAKE_MODAL = None


class ModalBackendTest(unittest.TestCase):
    """The real ModalBackend against a fake of the modal calls it makes:
    the arguments Modal gets and how Modal's answers and errors map."""

    def setUp(self):
        global FAKE_MODAL
        FAKE_MODAL = self.m = make_fake_modal()
        self.saved = tm.modal
        tm.modal = self.m
        self.asgi = tm.make_asgi(tm.Service(tm.ModalBackend(None)))

    def tearDown(self):
        tm.modal = self.saved

    def call(self, method, path, data=None, query=""):
        return asyncio.run(acall(self.asgi, method, path, data, query))

    def test_life(self):
        st, m, _ = self.call("POST", "/v1/machines", body(idle_timeout_s=300))
        self.assertEqual(st, 201, m)
        args, kw = self.m.creates[-1]
        self.assertEqual(args[:2], ("sh", "-c"))
        self.assertEqual(args[2], tm.sandbox_script(300))
        self.assertEqual(kw["gpu"], "A100-40GB")
        self.assertEqual(kw["name"], "modal-a10040gb-1a2b3c4d")
        self.assertEqual(kw["timeout"], 3600)
        self.assertEqual(kw["unencrypted_ports"], [7070])
        self.assertEqual(kw["image"], ("image", "tremote-agent"))
        self.assertEqual(kw["secrets"], [("secret", {"TREMOTE_SECRET": SECRET})])
        self.assertEqual(kw["tags"]["tremote.owner"], OWNER_A)
        self.assertEqual(kw["app"].app_id, "ap-looked-up")
        sb = self.m.sandboxes[m["sandbox_id"]]
        mid = m["machine_id"]

        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=0")
        self.assertEqual((m["state"], m["phase"]), ("starting", "scheduling"))
        # the fingerprint line arrives in pieces, after other output
        sb.tunnel = ("r7.modal.host", 40001)
        sb.chunks += ["/run/tremote-tls/cert.pem SHA256:" + FP + "\nStart the agent",
                      " with ...,\nand pin it ...: tls = on, fingerprint = SHA2",
                      "56:" + FP + "\n"]
        st, m, _ = self.call("GET", f"/v1/machines/{mid}", query="wait=10")
        self.assertEqual((m["state"], m["host"], m["port"], m["fingerprint"]),
                         ("ready", "r7.modal.host", 40001, "SHA256:" + FP))
        st, b, _ = self.call("GET", "/v1/machines", query="owner=" + OWNER_A)
        self.assertEqual([x["state"] for x in b["machines"]], ["ready"])
        # same again: Modal is not asked
        n = len(self.m.creates)
        st, _, _ = self.call("POST", "/v1/machines", body())
        self.assertEqual((st, len(self.m.creates)), (200, n))
        st, _, _ = self.call("DELETE", f"/v1/machines/{mid}")
        self.assertEqual(st, 200)
        self.assertTrue(sb.terminated)
        st, m, _ = self.call("GET", f"/v1/machines/{mid}")
        self.assertEqual((m["state"], m["why"]), ("stopped", "deleted"))

    def test_errors_map(self):
        self.m.refuse = self.m.exception.ResourceExhaustedError("GPU limit reached\nmore")
        st, e, h = self.call("POST", "/v1/machines", body())
        self.assertEqual((st, h["retry-after"]), (503, "30"))
        self.assertIn("GPU limit reached", e["error"])
        self.m.refuse = None
        st, m, _ = self.call("POST", "/v1/machines", body())
        self.assertEqual(st, 201)
        # the registry forgets it; Modal's name check finds the running one
        asyncio.run(tm.ModalBackend(None).rec_pop(m["machine_id"]))
        st, m2, _ = self.call("POST", "/v1/machines", body())
        self.assertEqual((st, m2["sandbox_id"]), (200, m["sandbox_id"]))
        # Modal forgets the Sandbox: failed, not an error
        del self.m.sandboxes[m["sandbox_id"]]
        st, m3, _ = self.call("GET", f"/v1/machines/{m['machine_id']}", query="wait=1")
        self.assertEqual((st, m3["state"]), (200, "failed"))
        st, _, _ = self.call("DELETE", f"/v1/machines/{m['machine_id']}")
        self.assertEqual(st, 200)


if __name__ == "__main__":
    print(f"test_app: {'real' if REAL_MODAL else 'stand-in'} modal package", file=sys.stderr)
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a.startswith("-")])
