"""tremote's Modal app: one Modal Sandbox running tremote-gpu-agent per machine.

Deploy it once per Modal workspace (after `tremote modal setup` has
published the agent's image):

    modal deploy tools/modal/tremote_modal.py

It serves HTTP API version 1 of docs/MODAL.md at
https://WORKSPACE--tremote-api.modal.run behind Modal proxy auth.  The
broker's MODAL provider asks it for machines; tools/modal/standin.py serves
the same contract on loopback for tests.

Layout: the HTTP layer is a small hand-written ASGI router (no web framework
in the image, and tests call it directly); `Service` holds the contract's
logic; every call to Modal is in `ModalBackend`, which tests replace with a
fake.  Only the bottom of the file touches Modal at import time.
"""

import asyncio
import json
import os
import re
import time
import urllib.parse

import modal

APP_NAME = "tremote"
API_LABEL = "tremote-api"     # https://WORKSPACE--tremote-api.modal.run
IMAGE_NAME = "tremote-agent"  # published by `tremote modal setup`
DICT_NAME = "tremote-machines"
AGENT_PORT = 7070
API_VERSION = 1
AGENT_PREFIX = "/opt/tremote"  # the bundle's place in the image (bin/, lib/)

# tremote's GPU types (libtremote's table, in its order) and the gpu= string
# Modal's GPU guide gives for each.  Modal's guide names the A10G "A10";
# "H100!" keeps Modal from upgrading an H100 to an H200, so the machine is
# the type that was asked for.
GPUS = {
    "T4": "T4",
    "L4": "L4",
    "A10G": "A10",
    "A100-40GB": "A100-40GB",
    "A100-80GB": "A100-80GB",
    "L40S": "L40S",
    "H100": "H100!",
    "H200": "H200",
    "B200": "B200",
}
GPU_NAMES = list(GPUS)

RETRY_AFTER_S = 30
WAIT_MAX_S = 60
BODY_MAX = 64 * 1024
# Deleted machines stay listed (state stopped, why deleted) this long.
KEEP_STOPPED_S = 3600

MACHINE_ID_RE = re.compile(r"[a-z0-9-]{1,31}")
SECRET_RE = re.compile(r"[A-Za-z0-9]{32,256}")
OWNER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# tremote-gpu-agent --gen-cert DIR prints "... fingerprint = SHA256:<hex>".
FINGERPRINT_RE = re.compile(r"fingerprint = (SHA256:[0-9A-Fa-f:]+)")

TAG_MACHINE = "tremote.machine"
TAG_OWNER = "tremote.owner"
TAG_GPU = "tremote.gpu"


def default_bundle_dir():
    """Where `tremote modal setup` gathers the agent and its libraries."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tremote", "modal-agent")


def agent_image(bundle=None):
    """The Sandboxes' image: Debian 12 (what tremote is built on) with the
    bundle (bin/tremote-gpu-agent, lib/ its libraries) at /opt/tremote.
    `tremote modal setup` builds it and publishes it as IMAGE_NAME; the
    bundle is TREMOTE_AGENT_BUNDLE, else setup's default directory."""
    bundle = bundle or os.environ.get("TREMOTE_AGENT_BUNDLE") or default_bundle_dir()
    return (modal.Image.from_registry("debian:bookworm-slim")
            .add_local_dir(bundle, AGENT_PREFIX, copy=True))


class NoCapacity(Exception):
    """Modal refused to create the Sandbox for lack of resources."""


class AlreadyRunning(Exception):
    """A running Sandbox already has this machine's name."""

    def __init__(self, sandbox_id):
        super().__init__(sandbox_id)
        self.sandbox_id = sandbox_id


class Gone(Exception):
    """Modal does not know the Sandbox (any more)."""


class HttpError(Exception):
    def __init__(self, status, error, **fields):
        super().__init__(error)
        self.status = status
        self.body = dict(error=error, **fields)
        self.headers = []


def sandbox_script(idle_timeout_s):
    """The Sandbox's command (docs/MODAL.md, "The Sandbox"), for sh -c."""
    return (
        "set -e\n"
        "umask 077\n"
        f"export PATH={AGENT_PREFIX}/bin:$PATH LD_LIBRARY_PATH={AGENT_PREFIX}/lib\n"
        "printf %s \"$TREMOTE_SECRET\" > /run/tremote.secret\n"
        "unset TREMOTE_SECRET\n"
        "mkdir -p /run/tremote-tls\n"
        "tremote-gpu-agent --gen-cert /run/tremote-tls\n"
        f"exec tremote-gpu-agent --listen 0.0.0.0:{AGENT_PORT} --backend cuda \\\n"
        "     --tls-cert /run/tremote-tls/cert.pem --tls-key /run/tremote-tls/key.pem \\\n"
        f"     --secret-file /run/tremote.secret --exit-idle {int(idle_timeout_s)}\n"
    )


def canonical_gpu(value):
    """The table's spelling of a GPU type (case-insensitive), or None."""
    if not isinstance(value, str):
        return None
    for name in GPU_NAMES:
        if name.lower() == value.lower():
            return name
    return None


def _int_field(body, name, lo, hi, default):
    if name not in body:
        return default
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise HttpError(400, f"{name}: must be an integer from {lo} to {hi}, "
                        f"not {json.dumps(v)[:40]}")
    return v


def validate_create(raw):
    """The POST body, checked as docs/MODAL.md says.  Raises HttpError."""
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
    gpu = canonical_gpu(body["gpu"])
    if gpu is None:
        shown = body["gpu"] if isinstance(body["gpu"], str) else json.dumps(body["gpu"])
        raise HttpError(400, f"unknown GPU type '{shown[:40]}'", valid=GPU_NAMES)
    secret = body.get("secret")
    if not isinstance(secret, str) or not SECRET_RE.fullmatch(secret):
        raise HttpError(400, "secret: must be 32 to 256 of [A-Za-z0-9]")
    owner = body.get("owner")
    if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
        raise HttpError(400, "owner: must be 1 to 64 of [A-Za-z0-9._-] "
                        "(the broker's id)")
    timeout_s = _int_field(body, "timeout_s", 60, 86400, 3600)
    idle_s = _int_field(body, "idle_timeout_s", 0, 86400, 600)
    return dict(machine_id=mid, gpu=gpu, secret=secret, owner=owner,
                timeout_s=timeout_s, idle_timeout_s=idle_s)


class Service:
    """The API's logic over a backend (ModalBackend, or a test's fake)."""

    def __init__(self, backend, clock=time.time, poll_s=1.0):
        self.be = backend
        self.clock = clock
        self.poll_s = poll_s

    # -- answers ----------------------------------------------------------

    def view(self, rec, state, phase, why=None, exit_code=None):
        m = {
            "machine_id": rec["machine_id"],
            "gpu": rec["gpu"],
            "modal_gpu": GPUS.get(rec["gpu"], rec["gpu"]),
            "owner": rec.get("owner", ""),
            "state": state,
            "phase": phase,
            "elapsed_s": max(0, int(self.clock() - rec.get("created", self.clock()))),
            "why": why,
            "exit_code": exit_code,
            "sandbox_id": rec.get("sandbox_id"),
        }
        if state == "ready":
            m["host"] = rec["host"]
            m["port"] = rec["port"]
            m["fingerprint"] = rec["fingerprint"]
        return m

    def _ended(self, rec, rc):
        """The view of a Sandbox that exited with rc (None: Modal lost it)."""
        ready = "fingerprint" in rec and "host" in rec
        lived = self.clock() - rec.get("created", self.clock())
        if rc is None:
            why = "the Sandbox is gone (Modal no longer knows it)"
        elif lived >= rec.get("timeout_s", 3600) - 5:
            why = f"timed out after {rec.get('timeout_s', 3600)} s"
        elif ready:
            why = f"the agent exited with code {rc}"
            if rc == 0 and rec.get("idle_timeout_s"):
                why += f" (idle {rec['idle_timeout_s']} s with no broker, or stopped)"
        else:
            why = f"the Sandbox exited with code {rc} before the agent was ready"
        if ready or (rc is not None and lived >= rec.get("timeout_s", 3600) - 5):
            return self.view(rec, "stopped", "stopped", why, rc)
        return self.view(rec, "failed", "failed", why, rc)

    async def refresh(self, rec, budget_s, probe=True):
        """The machine's state now; while it starts and probe is set, look
        for the tunnel and the fingerprint for up to about budget_s."""
        if rec.get("deleted"):
            return rec, self.view(rec, "stopped", "stopped", rec.get("why") or "deleted",
                                  rec.get("exit_code"))
        sid = rec["sandbox_id"]
        try:
            rc = await self.be.poll(sid)
        except Gone:
            return rec, self._ended(rec, None)
        if rc is not None:
            return rec, self._ended(rec, rc)
        if "fingerprint" in rec and "host" in rec:
            return rec, self.view(rec, "ready", "ready")
        if not probe:
            return rec, self.view(rec, "starting",
                                  "agent" if "host" in rec else "scheduling")
        end = self.clock() + max(1.0, budget_s)  # the long poll's deadline, kept
        if "host" not in rec:
            tun = await self.be.tunnel(sid, end - self.clock())
            if tun is None:
                return rec, self.view(rec, "starting", "scheduling")
            rec = dict(rec, host=tun[0], port=int(tun[1]))
            await self.be.rec_put(rec["machine_id"], rec)
        out = await self.be.stdout(sid, FINGERPRINT_RE, max(0.5, end - self.clock()))
        found = FINGERPRINT_RE.search(out or "")
        if not found:
            return rec, self.view(rec, "starting", "agent")
        rec = dict(rec, fingerprint=found.group(1))
        await self.be.rec_put(rec["machine_id"], rec)
        return rec, self.view(rec, "ready", "ready")

    # -- requests ---------------------------------------------------------

    async def health(self):
        return 200, {"ok": True, "api": API_VERSION, "app": APP_NAME,
                     "gpus": GPU_NAMES}

    async def create(self, raw):
        req = validate_create(raw)
        mid, gpu = req["machine_id"], req["gpu"]
        rec = await self.be.rec_get(mid)
        if rec is not None and not rec.get("deleted"):
            rec, m = await self.refresh(rec, 0, probe=False)
            if m["state"] in ("starting", "ready"):
                if rec["gpu"] != gpu:
                    raise HttpError(409, f"machine {mid} exists with gpu {rec['gpu']}, "
                                    f"not {gpu}", gpu=rec["gpu"])
                return 200, m
        tags = {TAG_MACHINE: mid, TAG_OWNER: req["owner"], TAG_GPU: gpu}
        try:
            sid = await self.be.create(mid, GPUS[gpu], req["secret"], tags,
                                       req["timeout_s"], req["idle_timeout_s"])
        except NoCapacity as e:
            err = HttpError(503, f"no {gpu} capacity on Modal: {e}",
                            retry_after_s=RETRY_AFTER_S)
            err.headers = [("retry-after", str(RETRY_AFTER_S))]
            raise err
        except AlreadyRunning as e:
            # Another request won the race, or the registry lost the entry.
            have = await self.be.tags(e.sandbox_id)
            have_gpu = have.get(TAG_GPU, gpu)
            if have_gpu != gpu:
                raise HttpError(409, f"machine {mid} exists with gpu {have_gpu}, "
                                f"not {gpu}", gpu=have_gpu)
            rec = await self.be.rec_get(mid)
            if rec is None or rec.get("sandbox_id") != e.sandbox_id:
                rec = dict(machine_id=mid, sandbox_id=e.sandbox_id, gpu=gpu,
                           owner=have.get(TAG_OWNER, req["owner"]),
                           created=self.clock(), timeout_s=req["timeout_s"],
                           idle_timeout_s=req["idle_timeout_s"])
                await self.be.rec_put(mid, rec)
            rec, m = await self.refresh(rec, 0, probe=False)
            return 200, m
        rec = dict(machine_id=mid, sandbox_id=sid, gpu=gpu, owner=req["owner"],
                   created=self.clock(), timeout_s=req["timeout_s"],
                   idle_timeout_s=req["idle_timeout_s"])
        await self.be.rec_put(mid, rec)
        return 201, self.view(rec, "starting", "scheduling")

    async def get(self, mid, wait_s):
        rec = await self.be.rec_get(mid) if MACHINE_ID_RE.fullmatch(mid) else None
        if rec is None:
            raise HttpError(404, f"no machine {mid}")
        deadline = self.clock() + wait_s
        while True:
            rec, m = await self.refresh(rec, deadline - self.clock())
            left = deadline - self.clock()
            if m["state"] != "starting" or left <= 0:
                return 200, m
            await asyncio.sleep(min(self.poll_s, left))

    async def list(self, owner):
        now = self.clock()
        out, seen = [], set()
        for mid, rec in await self.be.rec_items():
            if rec.get("deleted") and now - rec.get("stopped_at", now) > KEEP_STOPPED_S:
                await self.be.rec_pop(mid)
                continue
            seen.add(mid)
            if owner is not None and rec.get("owner") != owner:
                continue
            _, m = await self.refresh(rec, 0, probe=False)
            out.append(m)
        # Sandboxes the registry does not know (a write that failed): list
        # them too, so a broker can clean them up.
        for sid, tags in await self.be.list_sandboxes(owner):
            mid = tags.get(TAG_MACHINE)
            if not mid or mid in seen:
                continue
            rec = dict(machine_id=mid, sandbox_id=sid, gpu=tags.get(TAG_GPU, ""),
                       owner=tags.get(TAG_OWNER, ""), created=now)
            _, m = await self.refresh(rec, 0, probe=False)
            out.append(m)
        out.sort(key=lambda m: m["machine_id"])
        return 200, {"machines": out}

    async def delete(self, mid):
        if MACHINE_ID_RE.fullmatch(mid):
            rec = await self.be.rec_get(mid)
            sids = set()
            if rec is not None and not rec.get("deleted"):
                sids.add(rec["sandbox_id"])
            found = await self.be.find(mid)
            if found:
                sids.add(found)
            for sid in sids:
                await self.be.terminate(sid)
            if rec is not None and not rec.get("deleted"):
                rec = dict(rec, deleted=True, why="deleted", stopped_at=self.clock())
                await self.be.rec_put(mid, rec)
        return 200, {"machine_id": mid, "state": "stopped"}


# -- HTTP (ASGI) --------------------------------------------------------------

def _wait_param(query):
    vals = urllib.parse.parse_qs(query, keep_blank_values=True).get("wait")
    if not vals:
        return 0
    try:
        w = int(vals[-1])
    except ValueError:
        w = -1
    if not 0 <= w <= WAIT_MAX_S:
        raise HttpError(400, f"wait: must be an integer from 0 to {WAIT_MAX_S} (seconds)")
    return w


async def _read_body(receive):
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > BODY_MAX:
            raise HttpError(413, f"the body is larger than {BODY_MAX} bytes")
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


async def route(service, method, path, query, receive):
    """(status, body, extra headers) for one request."""
    parts = path.strip("/").split("/")  # ASGI paths come percent-decoded
    if parts == ["v1", "health"]:
        if method != "GET":
            raise HttpError(405, f"{method} {path}: use GET", allow="GET")
        return await service.health()
    if parts == ["v1", "machines"]:
        if method == "POST":
            return await service.create(await _read_body(receive))
        if method == "GET":
            owner = urllib.parse.parse_qs(query).get("owner")
            return await service.list(owner[-1] if owner else None)
        raise HttpError(405, f"{method} {path}: use GET or POST", allow="GET, POST")
    if len(parts) == 3 and parts[:2] == ["v1", "machines"] and parts[2]:
        if method == "GET":
            return await service.get(parts[2], _wait_param(query))
        if method == "DELETE":
            return await service.delete(parts[2])
        raise HttpError(405, f"{method} {path}: use GET or DELETE", allow="GET, DELETE")
    raise HttpError(404, f"no such endpoint: {method} {path}")


def make_asgi(service):
    """The ASGI application serving service."""

    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = []
        try:
            result = await route(service, scope["method"], scope["path"],
                                 scope.get("query_string", b"").decode("latin-1"), receive)
            status, body = result[0], result[1]
        except HttpError as e:
            status, body, headers = e.status, e.body, list(e.headers)
            if "allow" in body:
                headers.append(("allow", body.pop("allow")))
        except Exception as e:  # a Modal failure: one line, never a traceback
            status, body = 500, {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
        data = (json.dumps(body) + "\n").encode()
        hdrs = [(b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store")]
        hdrs += [(k.encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": data})

    return asgi


# -- Modal --------------------------------------------------------------------

class ModalBackend:
    """Every call to Modal.  Tests replace this class with a fake."""

    def __init__(self, app_obj=None):
        self._app_obj = app_obj
        self._dict = None
        self._image = None

    async def _app(self):
        # In the deployed app's containers the module's App is hydrated.
        if self._app_obj is None or self._app_obj.app_id is None:
            self._app_obj = await modal.App.lookup.aio(APP_NAME, create_if_missing=True)
        return self._app_obj

    def _registry(self):
        if self._dict is None:
            self._dict = modal.Dict.from_name(DICT_NAME, create_if_missing=True)
        return self._dict

    async def _sandbox(self, sid):
        try:
            return await modal.Sandbox.from_id.aio(sid)
        except modal.exception.NotFoundError as e:
            raise Gone(str(e))

    async def create(self, machine_id, modal_gpu, secret, tags, timeout_s, idle_timeout_s):
        if self._image is None:
            self._image = modal.Image.from_name(IMAGE_NAME)
        try:
            sb = await modal.Sandbox.create.aio(
                "sh", "-c", sandbox_script(idle_timeout_s),
                app=await self._app(), name=machine_id, tags=tags, image=self._image,
                gpu=modal_gpu, timeout=timeout_s,
                secrets=[modal.Secret.from_dict({"TREMOTE_SECRET": secret})],
                unencrypted_ports=[AGENT_PORT])
        except modal.exception.ResourceExhaustedError as e:
            raise NoCapacity(str(e).splitlines()[0] if str(e) else "resources exhausted")
        except modal.exception.AlreadyExistsError:
            sid = await self.find(machine_id)
            if sid is None:
                raise
            raise AlreadyRunning(sid)
        return sb.object_id

    async def find(self, machine_id):
        try:
            sb = await modal.Sandbox.from_name.aio(APP_NAME, machine_id)
        except modal.exception.NotFoundError:
            return None
        return sb.object_id

    async def tags(self, sid):
        return await (await self._sandbox(sid)).get_tags.aio()

    async def poll(self, sid):
        return await (await self._sandbox(sid)).poll.aio()

    async def tunnel(self, sid, timeout):
        sb = await self._sandbox(sid)
        try:
            tunnels = await sb.tunnels.aio(timeout=max(1, int(timeout)))
        except modal.exception.SandboxTimeoutError:
            return None
        t = tunnels.get(AGENT_PORT)
        if t is None or not t.unencrypted_host:
            return None
        return t.unencrypted_host, t.unencrypted_port

    async def stdout(self, sid, pattern, timeout):
        sb = await self._sandbox(sid)
        text = []

        async def scan():
            async for chunk in sb.stdout:
                text.append(chunk)
                if pattern.search("".join(text)):
                    return

        try:
            await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            pass
        return "".join(text)

    async def terminate(self, sid):
        try:
            await (await self._sandbox(sid)).terminate.aio()
        except Gone:
            pass

    async def list_sandboxes(self, owner):
        tags = {TAG_OWNER: owner} if owner is not None else None
        out = []
        app_id = (await self._app()).app_id
        async for sb in modal.Sandbox.list.aio(app_id=app_id, tags=tags):
            t = await sb.get_tags.aio()
            if TAG_MACHINE in t:
                out.append((sb.object_id, t))
        return out

    async def rec_get(self, mid):
        return await self._registry().get.aio(mid)

    async def rec_put(self, mid, rec):
        await self._registry().put.aio(mid, rec)

    async def rec_pop(self, mid):
        await self._registry().pop.aio(mid, None)

    async def rec_items(self):
        return [kv async for kv in self._registry().items.aio()]


app = modal.App(APP_NAME)


@app.function(image=modal.Image.debian_slim(), timeout=WAIT_MAX_S + 90,
              scaledown_window=300)
@modal.concurrent(max_inputs=100)
@modal.asgi_app(label=API_LABEL, requires_proxy_auth=True)
def api():
    return make_asgi(Service(ModalBackend(app)))
