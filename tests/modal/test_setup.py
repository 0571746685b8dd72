#!/usr/bin/env python3
"""tools/modal/setup.py (`tremote modal setup`) offline: --help, --dry-run
writes nothing, --bundle-only gathers the agent and the libraries it links
(not the C library's) so that it runs from the bundle alone, and a missing
or non-ELF agent is refused.  Nothing here talks to Modal.

Usage: test_setup.py AGENT [SOURCE_DIR]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: test_setup.py AGENT [SOURCE_DIR]")
AGENT = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("-")
                      else os.path.join(os.path.dirname(__file__), "..", ".."))
SETUP = os.path.join(SRC, "tools", "modal", "setup.py")


class SetupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test-modal-setup-")
        # no Modal token, whatever this machine has: nothing may be built
        self.env = dict(os.environ, HOME=self.tmp, XDG_DATA_HOME=os.path.join(self.tmp, "data"),
                        MODAL_TOKEN_ID="", MODAL_TOKEN_SECRET="")
        self.env.pop("TREMOTE_AGENT_BUNDLE", None)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_setup(self, *args):
        return subprocess.run([sys.executable, SETUP, *args], capture_output=True, text=True,
                              env=self.env, timeout=120)

    def test_help(self):
        r = self.run_setup("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for want in ("--agent", "--dry-run", "--bundle-only", "--out", "exit status",
                     "TREMOTE_AGENT_BUNDLE", "modal.ini", "tremote-agent", "examples"):
            self.assertIn(want, r.stdout)

    def libs_of_agent(self):
        out = subprocess.run(["ldd", AGENT], capture_output=True, text=True).stdout
        names = [l.split()[0] for l in out.splitlines() if "=>" in l]
        return {n for n in names if not n.startswith(("libc.so", "libm.so", "libpthread.so",
                                                       "libdl.so", "librt.so", "ld-linux"))}

    def test_dry_run_writes_nothing(self):
        r = self.run_setup("--agent", AGENT, "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "data")),
                         "--dry-run wrote the bundle")
        self.assertIn("dry run", r.stdout)
        self.assertIn(os.path.join(self.tmp, "data", "tremote", "modal-agent"), r.stdout)
        for lib in self.libs_of_agent():
            self.assertIn(f"lib/{lib}", r.stdout)
        self.assertNotIn("lib/libc.so", r.stdout)
        self.steps_said(r.stdout)

    def steps_said(self, out):
        self.assertIn("modal token new", out)
        self.assertIn("modal deploy " + os.path.join(SRC, "tools", "modal", "tremote_modal.py"),
                      out)
        self.assertIn("Proxy Auth Tokens", out)
        self.assertIn("~/.config/tremote/modal.ini", out)
        self.assertIn("install -m 600", out)
        for key in ("[modal]", "url = https://", "token_id = wk-", "token_secret = ws-"):
            self.assertIn(key, out)

    def test_bundle(self):
        out = os.path.join(self.tmp, "bundle")
        r = self.run_setup("--agent", AGENT, "--out", out, "--bundle-only")
        self.assertEqual(r.returncode, 0, r.stderr)
        agent = os.path.join(out, "bin", "tremote-gpu-agent")
        self.assertTrue(os.access(agent, os.X_OK))
        libs = set(os.listdir(os.path.join(out, "lib")))
        self.assertEqual(libs, self.libs_of_agent())
        self.assertFalse(any(l.startswith(("libc.so", "libm.so", "ld-linux")) for l in libs))
        with open(os.path.join(out, "MANIFEST")) as f:
            manifest = f.read()
        self.assertIn("bin/tremote-gpu-agent", manifest)
        for lib in libs:
            self.assertIn(f"lib/{lib}", manifest)
        # the bundle's agent finds its libraries in the bundle, and runs
        env = dict(self.env, LD_LIBRARY_PATH=os.path.join(out, "lib"))
        ldd = subprocess.run(["ldd", agent], capture_output=True, text=True, env=env).stdout
        for lib in libs:
            self.assertIn(f"{lib} => {os.path.join(out, 'lib', lib)}", ldd)
        v = subprocess.run([agent, "--version"], capture_output=True, text=True, env=env)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn("tremote-gpu-agent", v.stdout)
        self.assertIn("Build and publish", r.stdout)
        self.steps_said(r.stdout)
        # again: replaced whole, nothing left over
        r = self.run_setup("--agent", AGENT, "--out", out, "--bundle-only")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["bundle"])

    def test_default_dir_and_env(self):
        r = self.run_setup("--agent", AGENT, "--bundle-only")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(os.path.join(
            self.tmp, "data", "tremote", "modal-agent", "bin", "tremote-gpu-agent")))
        self.env["TREMOTE_AGENT_BUNDLE"] = os.path.join(self.tmp, "env-bundle")
        r = self.run_setup("--agent", AGENT, "--bundle-only")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "env-bundle", "lib")))

    def test_refusals(self):
        r = self.run_setup("--agent", os.path.join(self.tmp, "nope"), "--dry-run")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not an executable", r.stderr)
        script = os.path.join(self.tmp, "script")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(script, 0o755)
        r = self.run_setup("--agent", script, "--dry-run")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not an ELF", r.stderr)
        r = self.run_setup("--bogus")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[2:] if a.startswith("-")])
