#!/usr/bin/env python3
"""gen_coverage.py - write docs/COVERAGE.md: what the shim does with each export.

  gen_coverage.py MAP STUBS IMPLEMENTED_LIST SHIM_SRC_DIR OUT

Runs at build time (shim/CMakeLists.txt), after gen_exports.sh, and reads
the same table the stubs come from:

  MAP               gen_exports.sh's linker version script: every function
                    libcudart.so.13 exports, under its version node
  STUBS             gen_exports.sh's shim_stubs.c: the names it stubbed
  IMPLEMENTED_LIST  shim/implemented.list: the names defined by hand
  SHIM_SRC_DIR      shim/, whose *.c files are searched for each
                    implemented name's definition (to name the file)

and writes OUT (build/docs/COVERAGE.md; docs/COVERAGE.md is the committed
copy, which the coverage_doc test compares with it).  It stops with a
message, writing nothing, if the stubs are not exactly the exports that
implemented.list does not name: then the document would not describe the
library that was built.  The output names no build or toolkit path, so
every build from the same sources and toolkit writes the same bytes.
"""

import os
import re
import sys

# Families, by name, for reading the table: the first rule that matches a
# name wins.  A rule is a list of prefixes ("cudaGraph") and of substrings
# ("*Error*"); the order matters where rules overlap (cudaGraphics* is
# interop, not graph; cudaGraphAddExternalSemaphores* is graph, not interop,
# because only the prefixes of the interop rule are tested against it).
FAMILIES = [
    ("registration", ["__cuda"], []),
    ("error", [], ["Error"]),
    ("interop", ["cudaGL", "cudaEGL", "cudaVDPAU", "cudaGraphics", "cudaIpc",
                 "cudaImportExternal", "cudaDestroyExternal", "cudaExternal",
                 "cudaSignalExternal", "cudaWaitExternal"], ["EGL"]),
    ("graph", ["cudaGraph", "cudaUserObject"], []),
    ("stream", ["cudaStream"], ["StreamCapture"]),
    ("event", ["cudaEvent"], []),
    ("execution", ["cudaLaunch", "cudaFunc", "cudaOccupancy", "cudaKernel",
                   "cudaGetKernel", "cudaGetFuncBySymbol", "cudaLibrary"], []),
    ("device", ["cudaDevice", "cudaGetDevice", "cudaSetDevice",
                "cudaChooseDevice", "cudaInitDevice", "cudaSetValidDevices",
                "cudaCtx"], []),
    ("texture", [], ["Texture", "Surface", "ChannelDesc"]),
    ("memory", ["cudaMalloc", "cudaFree", "cudaMem", "cudaHost", "cudaArray",
                "cudaMipmappedArray", "cudaGetMipmappedArrayLevel",
                "cudaPointer", "cudaGetSymbol"], []),
    ("other", [""], []),  # versions, entry points, profiler, logs
]

NOT_SUPPORTED = "returns cudaErrorNotSupported"


def die(msg):
    sys.exit(f"gen_coverage.py: {msg}")


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        die(f"cannot read {path}: {e.strerror}")


def family_of(name):
    for fam, prefixes, parts in FAMILIES:
        if any(name.startswith(p) for p in prefixes) or \
           any(p in name for p in parts):
            return fam
    raise AssertionError("the last family matches every name")


def rule_text(prefixes, parts):
    """A rule as the document shows it: `cudaGraph*`, `*Error*`."""
    if prefixes == [""]:
        return "everything else"
    return ", ".join([f"`{p}*`" for p in prefixes] + [f"`*{p}*`" for p in parts])


def parse_map(text):
    """(node, names) from the version script: 'NODE {', 'global:', 'x;'..."""
    m = re.search(r"^(\S+) \{\s*global:\s*(.*?)\s*local: \*;", text,
                  re.M | re.S)
    if not m:
        die("the version script is not in gen_exports.sh's format")
    names = [n.strip() for n in m.group(2).split(";") if n.strip()]
    return m.group(1), names


def parse_list(text):
    """implemented.list, read as gen_exports.sh reads it."""
    return [n for n in (re.sub(r"\s", "", line.split("#", 1)[0])
                        for line in text.splitlines()) if n]


def definitions(src_dir, names):
    """{name: 'shim/FILE.c'} for each name a shim/*.c file defines.

    A definition is a line that starts at column 0 with the name (after
    the return type, if it is on the same line) and whose '(' is followed
    by a '{' before any ';', which a prototype or a call cannot look like.
    """
    found = {}
    for fn in sorted(os.listdir(src_dir)):
        if not fn.endswith(".c"):
            continue
        text = read(os.path.join(src_dir, fn))
        for name in names:
            pat = r"^(?![ \t#])[^;{}()=\n]*?(?<![\w])" + re.escape(name) + \
                  r"\s*\([^;{]*\{"
            if re.search(pat, text, re.M):
                if name in found:
                    die(f"{name} is defined in {found[name]} and shim/{fn}")
                found[name] = f"shim/{fn}"
    return found


def main(argv):
    if len(argv) != 6:
        sys.exit("usage: gen_coverage.py MAP STUBS IMPLEMENTED_LIST "
                 "SHIM_SRC_DIR OUT")
    map_path, stubs_path, list_path, src_dir, out = argv[1:]

    node, exports = parse_map(read(map_path))
    implemented = parse_list(read(list_path))
    stubs = re.findall(r"^int (\w+)\(void\) \{ return stub_fail",
                       read(stubs_path), re.M)
    if not exports or len(set(exports)) != len(exports):
        die(f"{map_path}: no exports, or one twice")
    # gen_exports.sh has checked implemented.list against the exports; the
    # stubs must be the rest, or this is not the table the stubs came from.
    expected = sorted(set(exports) - set(implemented))
    if sorted(stubs) != expected or not set(implemented) <= set(exports):
        die(f"{stubs_path} does not stub exactly the exports that "
            f"{list_path} does not name: rebuild")

    where = definitions(src_dir, implemented)
    impl = set(implemented)
    rows = {fam: [] for fam, _, _ in FAMILIES}
    for name in sorted(exports):
        if name in impl:
            status = f"implemented (`{where[name]}`)" if name in where \
                else "implemented"
        else:
            status = NOT_SUPPORTED
        rows[family_of(name)].append((name, status))

    n, ni = len(exports), len(impl)
    lines = [
        "# CUDA runtime coverage",
        "",
        "<!-- Generated by shim/gen_coverage.py at build time; do not edit. -->",
        "",
        f"What `libtremote_shim.so` does with each of the {n} functions that",
        f"the toolkit's `libcudart.so.13` exports (version node `{node}`).",
        "The shim exports exactly these names, so that a program built with",
        "`nvcc -cudart shared` binds every one of its runtime calls to it.",
        "",
        "- **implemented**: defined by hand in the file named, and listed in",
        "  `shim/implemented.list`.  Some of these refuse part of what CUDA",
        "  accepts; the file says what.",
        f"- **{NOT_SUPPORTED}**: a generated stub.  It writes",
        "  `tremote: NAME is not supported yet (cudaErrorNotSupported)` to",
        "  stderr the first time it is called, records 801",
        "  (`cudaErrorNotSupported`) as the thread's last error and returns it.",
        "",
        "How it is made: at build time `shim/gen_exports.sh` derives the export",
        "list from `libcudart.so.13` and generates a stub for every name that",
        "`shim/implemented.list` does not name; `shim/gen_coverage.py` reads",
        "that same list, `implemented.list` and the generated stubs, finds",
        "each implemented name's definition in `shim/*.c`, and writes",
        "`build/docs/COVERAGE.md`.  `docs/COVERAGE.md` is the committed copy,",
        "which the `coverage_doc` test keeps current: after changing what the",
        "shim implements, build and copy `build/docs/COVERAGE.md` to `docs/`.",
        "",
        "## Counts",
        "",
        "| functions | count |",
        "| --- | ---: |",
        f"| exported | {n} |",
        f"| implemented | {ni} |",
        f"| {NOT_SUPPORTED} | {n - ni} |",
        "",
        "## Families",
        "",
        "Families are inferred from the name: each name belongs to the first",
        "family, in this order, whose rule matches it (`P*`: starts with P;",
        "`*P*`: contains P).  The `_ptsz`/`_ptds` names are the per-thread",
        "default stream variants of the name without the suffix.",
        "",
        "| family | rule | exported | implemented | not supported |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for fam, prefixes, parts in FAMILIES:
        k = len(rows[fam])
        ki = sum(1 for _, s in rows[fam] if s != NOT_SUPPORTED)
        lines.append(f"| [{fam}](#{fam}) | {rule_text(prefixes, parts)} | "
                     f"{k} | {ki} | {k - ki} |")
    for fam, _, _ in FAMILIES:
        if not rows[fam]:
            continue
        lines += ["", f"## {fam}", "", "| function | status |", "| --- | --- |"]
        lines += [f"| `{name}` | {status} |" for name, status in rows[fam]]
    lines.append("")

    # Replace OUT only once it is complete.
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, out)
    print(f"gen_coverage.py: {n} exports, {ni} implemented, "
          f"{n - ni} not supported")


if __name__ == "__main__":
    main(sys.argv)
