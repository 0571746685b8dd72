#!/usr/bin/env python3
"""setup.py: what `tremote modal setup` runs.  See --help."""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
APP_FILE = os.path.join(HERE, "tremote_modal.py")
AGENT = "tremote-gpu-agent"
IMAGE_NAME = "tremote-agent"
APP_NAME = "tremote"
# Debian 12's own: the image (debian:bookworm-slim) has them, and they must
# match its C library.
SYSTEM_LIBS = re.compile(r"^(linux-vdso|linux-gate|ld-linux[^/]*|libc|libm|libpthread|"
                         r"libdl|librt|libresolv|libutil)\.so")

DESCRIPTION = """\
Prepare a Modal workspace for tremote's MODAL machines.

A MODAL machine is tremote-gpu-agent running in a Modal Sandbox, created by
the tremote Modal app (tools/modal/tremote_modal.py) that the broker talks
to; see docs/MODAL.md.  This command:

  1. gathers the agent and the shared libraries it links (found with ldd;
     the C library and its parts come from the image's Debian 12) into the
     bundle directory: bin/tremote-gpu-agent, lib/*.so*, MANIFEST;
  2. builds the Sandboxes' image from debian:bookworm-slim plus the bundle
     (at /opt/tremote) and publishes it in your Modal workspace as
     'tremote-agent', the name the app looks up (needs the `modal` Python
     package and a Modal token; skipped with --dry-run or --bundle-only);
  3. prints the remaining steps: the Modal token, `modal deploy` of the app,
     the proxy auth token, and ~/.config/tremote/modal.ini.

Run it again after rebuilding or upgrading tremote-gpu-agent, so new
machines run the new agent (machines already running keep theirs)."""

EPILOG = """\
files:
  BUNDLE/bin/tremote-gpu-agent, BUNDLE/lib/*.so*, BUNDLE/MANIFEST
      the bundle; BUNDLE is --out, else $TREMOTE_AGENT_BUNDLE, else
      $XDG_DATA_HOME/tremote/modal-agent (~/.local/share/tremote/modal-agent)
  ~/.config/tremote/modal.ini
      the broker's Modal settings (url, token_id, token_secret), mode 0600

environment:
  TREMOTE_AGENT_BUNDLE  the bundle directory (when --out is not given)
  TREMOTE_BINDIR        where to look for tremote-gpu-agent first
  MODAL_TOKEN_ID, MODAL_TOKEN_SECRET, MODAL_PROFILE
                        Modal's own: which workspace the image goes to

exit status:
  0  done (or, with --dry-run, nothing wrong found)
  1  the agent or a library it needs was not found, the bundle could not
     be written, or Modal refused the image
  2  invalid command line

examples:
  tremote modal setup                      # bundle, image, then the steps
  tremote modal setup --dry-run            # show what it would do
  tremote modal setup --agent build/gpu-agent/tremote-gpu-agent
"""


def default_bundle_dir():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tremote", "modal-agent")


def find_agent():
    """The installed tremote-gpu-agent: $TREMOTE_BINDIR, beside this
    script's install (PREFIX/share/tremote/modal -> PREFIX/bin), a build
    tree (tools/modal -> ../../build/gpu-agent), then PATH."""
    cands = []
    if os.environ.get("TREMOTE_BINDIR"):
        cands.append(os.path.join(os.environ["TREMOTE_BINDIR"], AGENT))
    cands += [os.path.join(HERE, "..", "..", "..", "bin", AGENT),
              os.path.join(HERE, "..", "..", "bin", AGENT),
              os.path.join(HERE, "..", "..", "build", "gpu-agent", AGENT)]
    on_path = shutil.which(AGENT)
    if on_path:
        cands.append(on_path)
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


class SetupError(Exception):
    pass


def elf_machine(path):
    """The ELF e_machine of path (62: x86-64), or None if not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def linked_libraries(agent):
    """[(soname, resolved path)] the agent needs beyond Debian 12's C
    library, from ldd."""
    try:
        out = subprocess.run(["ldd", agent], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SetupError("ldd not found (Debian: apt-get install libc-bin)")
    if out.returncode != 0:
        raise SetupError(f"ldd {agent} failed: {(out.stderr or out.stdout).strip()}")
    libs, missing = [], []
    for line in out.stdout.splitlines():
        line = line.strip()
        m = re.match(r"^(\S+)\s+=>\s+(.*?)\s*(\(0x[0-9a-f]+\))?$", line)
        if not m:
            continue  # the vdso or the loader, without "=>"
        name, where = m.group(1), m.group(2)
        if SYSTEM_LIBS.match(name):
            continue
        if where == "not found" or not where:
            missing.append(name)
            continue
        libs.append((name, where))
    if missing:
        raise SetupError(f"{agent} needs libraries ldd cannot find: {', '.join(missing)}")
    return libs


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_bundle(agent, libs, out):
    """Write the bundle into out (replaced as a whole)."""
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".modal-agent-", dir=parent)
    try:
        os.chmod(tmp, 0o755)
        os.mkdir(os.path.join(tmp, "bin"))
        os.mkdir(os.path.join(tmp, "lib"))
        shutil.copy(agent, os.path.join(tmp, "bin", AGENT))
        os.chmod(os.path.join(tmp, "bin", AGENT), 0o755)
        for name, path in libs:
            dst = os.path.join(tmp, "lib", name)
            shutil.copy(os.path.realpath(path), dst)
            os.chmod(dst, 0o644)
        with open(os.path.join(tmp, "MANIFEST"), "w") as f:
            f.write(f"# tremote modal setup: the agent bundle (from {agent})\n")
            for rel in [f"bin/{AGENT}"] + [f"lib/{n}" for n, _ in libs]:
                f.write(f"{sha256(os.path.join(tmp, rel))}  {rel}\n")
        if os.path.isdir(out):
            old = out + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def modal_status():
    """(the modal package imports, a Modal token is configured)."""
    try:
        from modal.config import config
    except ImportError:
        return False, bool(os.environ.get("MODAL_TOKEN_ID"))
    try:
        return True, bool(config.get("token_id"))
    except Exception:  # a broken ~/.modal.toml: say no token
        return True, False


def build_image(bundle):
    """Build the image from bundle and publish it as IMAGE_NAME; its id."""
    import importlib.util
    import modal
    spec = importlib.util.spec_from_file_location("tremote_modal", APP_FILE)
    tm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tm)
    app = modal.App.lookup(APP_NAME, create_if_missing=True)
    with modal.enable_output():
        image = tm.agent_image(bundle).build(app)
    image.publish(IMAGE_NAME)
    return image.object_id


def steps(bundle, built, have_modal, have_token, dry_run):
    ini = "~/.config/tremote/modal.ini"
    out = []
    if not have_modal:
        out.append("Install Modal's client:  python3 -m pip install modal")
    if not have_token:
        out.append("Log in to Modal (a browser opens):  modal token new")
    if not built:
        out.append(f"Build and publish the agent's image '{IMAGE_NAME}':  "
                   f"tremote modal setup" + (f" --out {bundle}" if bundle != default_bundle_dir()
                                             else ""))
    out.append(f"Deploy the app:  modal deploy {APP_FILE}\n"
               "   It prints the app's URL, https://WORKSPACE--tremote-api.modal.run")
    out.append("Make a proxy auth token for the broker: Modal dashboard -> Settings ->\n"
               "   Proxy Auth Tokens -> New token; note its ID (wk-...) and secret (ws-...)")
    out.append(f"Give them to the broker in {ini}, readable only by you (mode 0600;\n"
               "   the broker refuses it otherwise):\n"
               "     mkdir -p ~/.config/tremote\n"
               f"     install -m 600 /dev/null {ini}\n"
               f"     cat >{ini} <<'EOF'\n"
               "     [modal]\n"
               "     url = https://WORKSPACE--tremote-api.modal.run\n"
               "     token_id = wk-...\n"
               "     token_secret = ws-...\n"
               "     EOF\n"
               "   (TREMOTE_MODAL_URL, TREMOTE_MODAL_TOKEN_ID and TREMOTE_MODAL_TOKEN_SECRET\n"
               "   override the file)")
    out.append("Add a machine:  tremote machine add modal A100-40GB")
    head = "Then:" if not dry_run else "The steps after this command:"
    return head + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(out, 1))


def main(argv=None):
    p = argparse.ArgumentParser(prog="tremote modal setup", description=DESCRIPTION,
                                epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", metavar="PATH",
                   help="the tremote-gpu-agent to bundle (default: the installed one: "
                        "$TREMOTE_BINDIR, beside this tremote, or on PATH)")
    p.add_argument("--out", metavar="DIR",
                   help="the bundle directory (default $TREMOTE_AGENT_BUNDLE, else "
                        "~/.local/share/tremote/modal-agent)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be bundled and the steps; write and build nothing")
    p.add_argument("--bundle-only", action="store_true",
                   help="write the bundle but do not build or publish the image")
    a = p.parse_args(argv)

    agent = a.agent or find_agent()
    if not agent:
        print("tremote modal setup: tremote-gpu-agent not found; give --agent PATH",
              file=sys.stderr)
        return 1
    agent = os.path.abspath(agent)
    if not (os.path.isfile(agent) and os.access(agent, os.X_OK)):
        print(f"tremote modal setup: --agent {agent}: not an executable file",
              file=sys.stderr)
        return 1
    bundle = os.path.abspath(os.path.expanduser(
        a.out or os.environ.get("TREMOTE_AGENT_BUNDLE") or default_bundle_dir()))
    try:
        mach = elf_machine(agent)
        if mach is None:
            raise SetupError(f"{agent} is not an ELF executable")
        if mach != 62:
            raise SetupError(f"{agent} is not built for x86-64 (ELF machine {mach}); "
                             "Modal runs linux/amd64")
        libs = linked_libraries(agent)
    except SetupError as e:
        print(f"tremote modal setup: {e}", file=sys.stderr)
        return 1

    have_modal, have_token = modal_status()
    print(f"agent:  {agent}")
    print(f"bundle: {bundle}")
    print(f"  bin/{AGENT}")
    for name, path in libs:
        print(f"  lib/{name}  (from {os.path.realpath(path)})")
    if a.dry_run:
        print(f"dry run: nothing written; the image would be debian:bookworm-slim plus the "
              f"bundle at /opt/tremote, published as '{IMAGE_NAME}'")
        print()
        print(steps(bundle, True, have_modal, have_token, True))
        return 0

    try:
        make_bundle(agent, libs, bundle)
    except OSError as e:
        print(f"tremote modal setup: cannot write the bundle {bundle}: {e}", file=sys.stderr)
        return 1
    print(f"bundle written ({1 + len(libs)} files, MANIFEST with their SHA-256)")

    built = False
    if not a.bundle_only and have_modal and have_token:
        print(f"building the image and publishing it as '{IMAGE_NAME}'...")
        try:
            image_id = build_image(bundle)
        except Exception as e:  # Modal's errors: say it and how to go on
            print(f"tremote modal setup: Modal refused the image: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"image {image_id} published as '{IMAGE_NAME}'")
        built = True
    print()
    print(steps(bundle, built, have_modal, have_token, False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
