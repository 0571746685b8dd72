#!/usr/bin/env python3
"""gen_coverage.py - write docs/COVERAGE.md: what the shim does with each export.

  gen_coverage.py MAP STUBS IMPLEMENTED_LIST ABI12_TSV ABI12_GEN
                  IMPLEMENTED12_LIST SHIM_SRC_DIR OUT

Runs at build time (shim/CMakeLists.txt), after gen_exports.sh, and reads
the same table the stubs come from:

  MAP               gen_exports.sh's linker version script: every function
                    libcudart.so.13 exports, under its version node
  STUBS             gen_exports.sh's shim_stubs.c: the names it stubbed
  IMPLEMENTED_LIST  shim/implemented.list: the names defined by hand
  ABI12_TSV         gen_exports.sh's abi12.tsv: each function of
                    libcudart.so.12, its ABI verdict, what the shim does
                    with it (trampoline, own, stub) and why
  ABI12_GEN         gen_exports.sh's shim_abi12_gen.c: the trampolines and
                    stubs it wrote for CUDA 12
  IMPLEMENTED12_LIST  shim/implemented12.list: the CUDA 12 functions
                    shim_abi12.c defines (as shim12_NAME)
  SHIM_SRC_DIR      shim/, whose *.c files are searched for each
                    implemented name's definition (to name the file)

and writes OUT (build/docs/COVERAGE.md; docs/COVERAGE.md is the committed
copy, which the coverage_doc test compares with it).  It stops with a
message, writing nothing, if the stubs are not exactly the exports that
implemented.list does not name, or the CUDA 12 trampolines, stubs and own
functions are not what abi12.tsv says (an implemented12.list name that no
shim/*.c defines included): then the document would not describe the
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


def definitions(src_dir, names, prefix=""):
    """{name: 'shim/FILE.c'} for each name a shim/*.c file defines.

    A definition is a line that starts at column 0 with the name (after
    the return type, if it is on the same line) and whose '(' is followed
    by a '{' before any ';', which a prototype or a call cannot look like.
    """
    found = {}
    names = [prefix + n for n in names]
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
                found[name[len(prefix):]] = f"shim/{fn}"
    return found


ABI12_WHAT = {"trampoline", "own", "stub"}


def abi12_section(tsv_path, gen_path, list12_path, src_dir, impl13, where13):
    """The lines of the CUDA 12 part, after checking abi12.tsv against the
    generated file and implemented12.list."""
    rows = []
    for i, line in enumerate(read(tsv_path).splitlines(), 1):
        f = line.split("\t")
        if len(f) != 4 or f[1] not in ("same", "differs", "only12") or \
           f[2] not in ABI12_WHAT:
            die(f"{tsv_path}:{i}: not in gen_exports.sh's format: {line!r}")
        rows.append(f)
    gen = read(gen_path)
    tramps = set(re.findall(r"^SHIM12_TRAMPOLINE\((\w+)\);", gen, re.M))
    stubs = set(re.findall(r"^int shim12_stub_(\w+)\(void\) \{", gen, re.M))
    own = set(parse_list(read(list12_path)))
    by = {w: {r[0] for r in rows if r[2] == w} for w in ABI12_WHAT}
    if by["trampoline"] != tramps or by["stub"] != stubs or by["own"] != own:
        die(f"{gen_path} and {list12_path} are not what {tsv_path} says: "
            "rebuild")
    where = definitions(src_dir, sorted(own), "shim12_")
    missing = sorted(own - set(where))
    if missing:
        die(f"{list12_path} names these, but no shim/*.c defines shim12_NAME "
            f"for them: {', '.join(missing)}")

    def status(name, what):
        if what == "own":
            return f"CUDA 12 version (`{where[name]}`)"
        if what == "stub":
            return NOT_SUPPORTED
        if name in impl13:
            return f"CUDA 13's (`{where13[name]}`)" if name in where13 \
                else "CUDA 13's"
        return f"CUDA 13's, which {NOT_SUPPORTED}"

    n = len(rows)
    nt = len(tramps)
    nti = sum(1 for r in rows if r[2] == "trampoline" and r[0] in impl13)
    lines = [
        "",
        "## CUDA 12",
        "",
        f"The same library also serves programs linked against CUDA 12's",
        f"`libcudart.so.12`: it exports the {n} functions that library exports,",
        "under its version node `libcudart.so.12`, as listed in",
        "`shim/cudart12.exports` (from PyPI's `nvidia-cuda-runtime-cu12` wheel,",
        "made and checked by `shim/abi12_audit.py`).  Each is one of:",
        "",
        "- **CUDA 13's**: the ABI audit found CUDA 13's function of the same",
        "  name has the same prototype and the same types behind it, so",
        "  `NAME@libcudart.so.12` jumps to it (`shim_abi12_gen.c`, generated)",
        "  and does what the CUDA 13 table above says.",
        "- **CUDA 12 version**: its ABI differs from CUDA 13's, or CUDA 13 has",
        "  no such function; defined by hand in the file named and listed in",
        "  `shim/implemented12.list`.",
        f"- **{NOT_SUPPORTED}**: its ABI differs or CUDA 13 lacks it, and the",
        "  shim does not implement it: a generated stub like those above.",
        "",
        "| CUDA 12 functions | count |",
        "| --- | ---: |",
        f"| CUDA 12 exported | {n} |",
        f"| CUDA 12 same ABI, CUDA 13's implementation | {nti} |",
        f"| CUDA 12 same ABI, CUDA 13's stub | {nt - nti} |",
        f"| CUDA 12 own version | {len(own)} |",
        f"| CUDA 12 {NOT_SUPPORTED} | {len(stubs)} |",
        "",
        "### CUDA 12: differing ABI or not in CUDA 13",
        "",
        "| function | status | why (the audit's words) |",
        "| --- | --- | --- |",
    ]
    for name, verdict, what, why in rows:
        if verdict != "same":
            why = why.replace("|", "\\|") or verdict
            lines.append(f"| `{name}@libcudart.so.12` | {status(name, what)} "
                         f"| {why} |")
    lines += ["", "### CUDA 12: same ABI as CUDA 13", "",
              "| function | status |", "| --- | --- |"]
    for name, verdict, what, why in rows:
        if verdict == "same":
            lines.append(f"| `{name}@libcudart.so.12` | {status(name, what)} |")
    return lines


def main(argv):
    if len(argv) != 9:
        sys.exit("usage: gen_coverage.py MAP STUBS IMPLEMENTED_LIST ABI12_TSV "
                 "ABI12_GEN IMPLEMENTED12_LIST SHIM_SRC_DIR OUT")
    (map_path, stubs_path, list_path, tsv_path, gen_path, list12_path,
     src_dir, out) = argv[1:]

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
    lines += abi12_section(tsv_path, gen_path, list12_path, src_dir, impl,
                           where)
    lines.append("")

    # Replace OUT only once it is complete.
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, out)
    print(f"gen_coverage.py: {n} exports, {ni} implemented, "
          f"{n - ni} not supported; CUDA 12 part written")


if __name__ == "__main__":
    main(sys.argv)
