#!/usr/bin/env python3
"""abi12_audit.py - which CUDA 12 runtime functions have CUDA 13's ABI.

  abi12_audit.py CUDA12_INCLUDE CUDART12_SO CUDA13_INCLUDE CUDART13_SO
                 COMPAT_DIR WHEEL_VERSION [--check FILE]

Writes shim/cudart12.exports (to stdout, or compares it with FILE and
exits 1 on a difference): one line per function that CUDART12_SO (the
libcudart.so.12 of PyPI's nvidia-cuda-runtime-cu12 wheel) exports, with
what the shim may do with it:

  NAME  same     CUDA 13's function of that name has the same ABI and
                 meaning: libcudart.so.12's NAME may jump to it
  NAME  differs  the name is in both, but its prototype, a type the
                 prototype reaches, or its meaning differs: the shim needs
                 its own CUDA 12 version (or a stub)
  NAME  only12   CUDA 13 has no function of that name

followed by the reason.  This is a developer's tool, run by hand when the
wheel changes (shim/abi12_wheel.sh fetches it) and by the abi12 test, which
checks that the committed file is still what it says; the build reads only
the committed file, so building never needs the network.

How the ABI is compared.  Both versions' headers are parsed by clang (its
JSON AST, with __CUDA_API_VERSION_INTERNAL so that every exported name is
declared under its own name, _ptsz/_ptds included).  For each name in both
libraries: the prototypes (types only) must be equal, and so must every
type they reach, followed through typedefs, struct and union members and
pointers: records field by field (type and name, nested anonymous records
inline), typedefs by their underlying type.  An enum may gain constants in
13 (a CUDA 12 program passes only values it knows, with their meaning
unchanged); a constant of 12 that 13 removed or renumbered is a difference.
A union with a fixed `pad` may gain members in 13.  What the headers cannot
say (a value a function returns, names no header declares) is in MANUAL
below, with the reason, reviewed by hand.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

# Decisions the headers cannot make, reviewed by hand.  Each is (class,
# reason); a name here must be in both libraries.
MANUAL = {
    "cudaRuntimeGetVersion": (
        "differs", "returns the runtime's version: a CUDA 12 program must "
        "see 12xxx, the version of the libcudart.so.12 it was built for"),
    # The registration calls nvcc's generated code makes; no public header
    # declares them.  Their prototypes, from crt/host_runtime.h and the
    # generated stubs, are the same in 12 and 13 (checked by reading both).
    "__cudaInitModule": ("same", "registration: not in the headers; "
                         "char (void **) in both"),
    "__cudaPopCallConfiguration": ("same", "registration: not in the "
                                   "headers; same prototype in 12 and 13"),
    "__cudaPushCallConfiguration": ("same", "registration: not in the "
                                    "headers; same prototype in 12 and 13"),
    "__cudaRegisterFatBinary": ("same", "registration: not in the headers; "
                                "void **(void *) in both"),
    "__cudaRegisterFatBinaryEnd": ("same", "registration: not in the "
                                   "headers; void (void **) in both"),
    "__cudaRegisterFunction": ("same", "registration: not in the headers; "
                               "same prototype in 12 and 13"),
    "__cudaRegisterHostVar": ("same", "registration: not in the headers; "
                              "same prototype in 12 and 13"),
    "__cudaRegisterManagedVar": ("same", "registration: not in the "
                                 "headers; same prototype in 12 and 13"),
    "__cudaRegisterUnifiedTable": ("same", "registration: not in the "
                                   "headers; same prototype in 12 and 13"),
    "__cudaRegisterVar": ("same", "registration: not in the headers; same "
                          "prototype in 12 and 13"),
    "__cudaUnregisterFatBinary": ("same", "registration: not in the "
                                  "headers; void (void **) in both"),
    "__cudaGetKernel": ("same", "registration: not in the headers; same "
                        "prototype in 12 and 13"),
    "__cudaLaunchKernel": ("same", "registration: not in the headers; "
                           "same prototype in 12 and 13"),
    "__cudaLaunchKernel_ptsz": ("same", "registration: not in the "
                                "headers; same prototype in 12 and 13"),
}

# Enum constants that count the others rather than name a value: CUDA 13
# renumbering them changes no call's meaning.
SENTINELS = {"cudaDevAttrMax"}

HEADERS = ["cuda_runtime_api.h", "cuda_profiler_api.h", "cuda_gl_interop.h",
           "cuda_vdpau_interop.h", "cuda_egl_interop.h"]


def die(msg):
    sys.exit(f"abi12_audit.py: {msg}")


def exports(so):
    """The defined functions of a library, without their versions."""
    try:
        out = subprocess.run(["nm", "-D", "--defined-only", so], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        die(f"nm failed on {so}: {e}")
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] != "A":
            names.add(f[2].split("@")[0])
    if not names:
        die(f"no functions in {so}")
    return names


def is_comment(n):
    return isinstance(n, dict) and n.get("kind", "").endswith("Comment")


class Headers:
    """One version's declarations, from clang's JSON AST."""

    ANON = re.compile(r"\((?:unnamed|anonymous)[^()]*\)")

    def __init__(self, inc, after):
        src = "".join(f"#include <{h}>\n" for h in HEADERS)
        cmd = ["clang", "-x", "c", "-fsyntax-only", "-Xclang",
               "-ast-dump=json", "-D__CUDA_API_VERSION_INTERNAL",
               "-Wno-everything", "-I", inc] + after + ["-"]
        try:
            r = subprocess.run(cmd, input=src, capture_output=True, text=True)
        except OSError as e:
            die(f"cannot run clang (needed to read the headers): {e}")
        if r.returncode != 0:
            die(f"clang could not parse the headers in {inc}:\n{r.stderr[-2000:]}")
        top = json.loads(r.stdout)["inner"]
        self.funcs, self.records, self.enums, self.typedefs = {}, {}, {}, {}
        last_anon = None
        for n in top:
            k, name = n["kind"], n.get("name")
            if k == "FunctionDecl":
                self.funcs.setdefault(name, n["type"]["qualType"])
            elif k == "RecordDecl":
                if not name:
                    last_anon = ("record", n)
                elif n.get("completeDefinition"):
                    self.records[name] = n
            elif k == "EnumDecl":
                if not name:
                    last_anon = ("enum", n)
                else:
                    self.enums[name] = n
            elif k == "TypedefDecl":
                t = n["type"]["qualType"]
                if self.ANON.search(t):
                    if not last_anon:
                        die(f"typedef {name}: no anonymous type before it")
                    self.typedefs[name] = self.inline(last_anon)
                else:
                    self.typedefs[name] = t

    def inline(self, anon):
        kind, node = anon
        if kind == "enum":
            return "enum {" + ", ".join(f"{c}={v}" for c, v in
                                        self.enum_values(node).items()) + "}"
        return self.record_text(node)

    @staticmethod
    def enum_values(node):
        vals, nxt = {}, 0
        for c in node.get("inner", []):
            if c.get("kind") != "EnumConstantDecl":
                continue
            init = [x for x in c.get("inner", []) if "value" in x]
            v = int(init[0]["value"]) if init else nxt
            vals[c["name"]] = v
            nxt = v + 1
        return vals

    def record_text(self, node):
        """A record's members in order: 'type name' with nested anonymous
        records written inline; bit-fields with their width."""
        parts, pending = [], None
        for c in node.get("inner", []):
            if is_comment(c):
                continue
            if c["kind"] == "RecordDecl" and not c.get("name"):
                pending = self.record_text(c)
                continue
            if c["kind"] != "FieldDecl":
                continue
            t = c["type"]["qualType"]
            if self.ANON.search(t):
                if pending is None:
                    die(f"field {c.get('name')}: no anonymous record before it")
                t = self.ANON.sub(pending, t).replace("struct struct", "struct") \
                    .replace("union union", "union")
            width = ""
            if c.get("isBitfield"):
                w = [x for x in c.get("inner", []) if "value" in x]
                width = ":" + (w[0]["value"] if w else "?")
            parts.append(f"{t} {c.get('name', '')}{width}".strip())
        return node.get("tagUsed", "struct") + " {" + "; ".join(parts) + "}"

    def refs(self, text):
        """The named types a type or definition text mentions."""
        out = set()
        for kind, name in re.findall(r"\b(struct|union|enum)\s+(\w+)", text):
            out.add(("enum" if kind == "enum" else "record", name))
        for word in re.findall(r"\b[A-Za-z_]\w*\b", text):
            if word in self.typedefs:
                out.add(("typedef", word))
        return out

    def definition(self, key):
        """(text, enum values or None); text None for an opaque type."""
        kind, name = key
        if kind == "typedef":
            return self.typedefs.get(name), None
        if kind == "enum":
            n = self.enums.get(name)
            return (None, None) if n is None else ("enum", self.enum_values(n))
        n = self.records.get(name)
        return (None, None) if n is None else (self.record_text(n), None)


def numeric_macros(inc, after):
    """{name: value} of the headers' object-like cuda*/CUDA* macros whose
    value is a number (flags, limits, ids a program passes as integers)."""
    src = "".join(f"#include <{h}>\n" for h in HEADERS)
    cmd = ["clang", "-x", "c", "-E", "-dM", "-D__CUDA_API_VERSION_INTERNAL",
           "-I", inc] + after + ["-"]
    try:
        r = subprocess.run(cmd, input=src, capture_output=True, text=True)
    except OSError as e:
        die(f"cannot run clang: {e}")
    if r.returncode != 0:
        die(f"clang -dM failed on {inc}:\n{r.stderr[-2000:]}")
    out = {}
    for m in re.finditer(r"^#define ((?:cuda|CUDA)\w*) \(?(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]*\)?$",
                         r.stdout, re.M):
        out[m.group(1)] = int(m.group(2), 0)
    return out


def closure(h, text):
    """Every named type text reaches in h."""
    seen, todo = set(), list(h.refs(text))
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        t, _ = h.definition(key)
        if t and t != "enum":
            todo.extend(h.refs(t) - seen)
    return seen


def union_grows(t12, t13):
    """A union with a pad member that only gained members in 13."""
    m12 = re.match(r"union \{(.*)\}$", t12 or "")
    m13 = re.match(r"union \{(.*)\}$", t13 or "")
    if not (m12 and m13):
        return False
    f12, f13 = m12.group(1).split("; "), m13.group(1).split("; ")
    pads = [f for f in f12 if re.match(r"char \[\d+\] pad$|char\[\d+\] pad$", f)]
    return bool(pads) and pads[0] in f13 and set(f12) <= set(f13)


def fields_diff(t12, t13):
    """A short account of how two record texts differ."""
    def names(t):
        body = re.sub(r"^\w+ \{|\}$", "", t)
        return [f.split(" ")[-1].split(":")[0] for f in body.split("; ") if f]
    n12, n13 = names(t12), names(t13)
    gone = [n for n in n12 if n not in n13]
    new = [n for n in n13 if n not in n12]
    s = []
    if gone:
        s.append("12 only: " + ", ".join(gone[:8]) + (" ..." if len(gone) > 8 else ""))
    if new:
        s.append("13 only: " + ", ".join(new[:8]) + (" ..." if len(new) > 8 else ""))
    return "; ".join(s) if s else "member types or order differ"


def compare_type(h12, h13, key):
    """None if key means the same in 12 and 13, else why not."""
    kind, name = key
    t12, v12 = h12.definition(key)
    t13, v13 = h13.definition(key)
    label = f"{'enum ' if kind == 'enum' else ''}{name}"
    if kind == "enum":
        if v12 is None or v13 is None:
            return None if v12 == v13 else f"{label} is defined in one version only"
        # A constant 13 dropped is harmless when 13 keeps its value under
        # another name of 12's (an alias), or when it only counts the others.
        kept = set(v13.values())
        bad = [c for c, v in v12.items() if v13.get(c) != v and
               c not in SENTINELS and not (c not in v13 and v in kept and
               any(v13.get(o) == v for o in v12 if o != c))]
        if bad:
            return f"{label}: 13 removed or renumbered " + ", ".join(bad[:6]) + \
                (" ..." if len(bad) > 6 else "")
        return None
    if t12 == t13:
        return None
    if t12 is None or t13 is None:
        return f"{label} is defined in one version only"
    if kind == "record" and union_grows(t12, t13):
        return None
    if kind == "record":
        return f"struct {name} differs ({fields_diff(t12, t13)})"
    return f"typedef {name}: {t12} in 12, {t13} in 13"


def main(argv):
    args = argv[1:]
    check = None
    if len(args) == 8 and args[6] == "--check":
        check = args[7]
        args = args[:6]
    if len(args) != 6:
        sys.exit("usage: abi12_audit.py CUDA12_INCLUDE CUDART12_SO "
                 "CUDA13_INCLUDE CUDART13_SO COMPAT_DIR WHEEL_VERSION "
                 "[--check FILE]")
    inc12, so12, inc13, so13, compat, wheel_version = args
    n12, n13 = exports(so12), exports(so13)
    for name in MANUAL:
        if name not in n12 or name not in n13:
            die(f"MANUAL names {name}, which is not in both libraries")
    # The wheel's headers include crt/host_defines.h (macros only: __host__,
    # CUDARTAPI, alignment), which is not in the wheel; the toolkit's
    # stands in for it, found after everything else.
    crt = tempfile.mkdtemp(prefix="abi12_audit.")
    os.symlink(os.path.join(os.path.abspath(inc13), "crt"),
               os.path.join(crt, "crt"))
    after12 = ["-idirafter", compat, "-idirafter", crt]
    after13 = ["-idirafter", compat]
    try:
        h12, h13 = Headers(inc12, after12), Headers(inc13, after13)
        m12 = numeric_macros(inc12, after12)
        m13 = numeric_macros(inc13, after13)
    finally:
        os.unlink(os.path.join(crt, "crt"))
        os.rmdir(crt)
    # Flags and ids travel as plain integers: one whose value changed would
    # change a call's meaning without changing any type.  None has; stop if
    # one does, so that a person decides.
    moved = sorted(k for k in m12 if k in m13 and m12[k] != m13[k] and
                   k not in ("CUDART_VERSION",))
    if moved:
        die("these macros have other values in 13; decide by hand which "
            "calls that changes: " + ", ".join(moved))
    nkept = sum(1 for k in m12 if k in m13 and k != "CUDART_VERSION")

    rows = []
    for name in sorted(n12):
        p12 = h12.funcs.get(name)
        if p12 is not None and not re.match(r"cudaError_t \(", p12):
            ret = "; returns " + p12.split(" (")[0]
        else:
            ret = ""
        if name not in n13:
            rows.append((name, "only12", "not in libcudart.so.13" + ret))
            continue
        if name in MANUAL:
            cls, why = MANUAL[name]
            rows.append((name, cls, why + (ret if cls != "same" else "")))
            continue
        p13 = h13.funcs.get(name)
        if p12 is None or p13 is None:
            die(f"{name}: no prototype in the {'12' if p12 is None else '13'} "
                "headers; decide by hand and add it to MANUAL")
        if p12 != p13:
            rows.append((name, "differs", f"prototype: {p12} in 12, {p13} in 13"))
            continue
        why = []
        for key in sorted(closure(h12, p12) | closure(h13, p13)):
            w = compare_type(h12, h13, key)
            if w:
                why.append(w)
        if why:
            rows.append((name, "differs", "; ".join(why) + ret))
        else:
            rows.append((name, "same", ""))

    counts = {c: sum(1 for r in rows if r[1] == c)
              for c in ("same", "differs", "only12")}
    out = [
        "# cudart12.exports: the functions libcudart.so.12 exports (version",
        "# node libcudart.so.12), each with whether CUDA 13's function of the",
        "# same name has its ABI.  Generated by shim/abi12_audit.py from",
        f"# nvidia-cuda-runtime-cu12 {wheel_version} (PyPI) and this toolkit's",
        "# libcudart.so.13; regenerate with shim/abi12_wheel.sh --regen.  Do",
        "# not edit: the abi12 test checks it against the wheel.",
        "#",
        "#   same     trampoline to CUDA 13's function",
        "#   differs  needs a CUDA 12 version (shim/implemented12.list) or a stub",
        "#   only12   not in CUDA 13: a CUDA 12 version or a stub",
        "#",
        f"# {len(rows)} functions: {counts['same']} same, "
        f"{counts['differs']} differs, {counts['only12']} only12; the "
        f"{nkept} numeric",
        "# cuda* macros (flags, ids) both versions define have the same values.",
    ]
    for name, cls, why in rows:
        out.append(f"{name}\t{cls}" + (f"\t{why}" if why else ""))
    text = "\n".join(out) + "\n"
    if check is None:
        sys.stdout.write(text)
        return
    try:
        with open(check, encoding="utf-8") as f:
            old = f.read()
    except OSError as e:
        die(f"cannot read {check}: {e.strerror}")
    if old != text:
        import difflib
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(True), text.splitlines(True), check, "audit"))
        die(f"{check} is not what the audit says (diff above): regenerate it")
    print(f"abi12_audit.py: {check} agrees: {len(rows)} functions, "
          f"{counts['same']} same, {counts['differs']} differs, "
          f"{counts['only12']} only12")


if __name__ == "__main__":
    main(sys.argv)
