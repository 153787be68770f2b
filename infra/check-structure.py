#!/usr/bin/env python3
"""Keeps the house's shape (ARCHITECTURE.md): run by CI, exit 1 with every breach listed.

Rules, over `shared/src` unless said otherwise:
  1. no adapter names the workflow: files under `adapters/` import nothing from `steps`,
     `lambda`, `engine` or `index`;
  2. ports name no step: `ports.rs` / `ports/` import nothing from `steps`;
  3. no file-level import cycle (a `mod.rs` and its own children aside);
  4. no port trait has more than 15 methods;
  5. no source file has more than 800 code lines (comments, blank lines and `#[cfg(test)]`
     modules not counted; tests, benches and the simulator aside);
  6. the CLI has one integration-test binary (`cli/tests/*.rs` and `cli/tests/*/main.rs`);
  7. every dependency a crate declares is used by it.

Imports are read from the source text: every `crate::…`, `super::…` and `self::…` path, with
`use` trees expanded and items re-exported by a `mod.rs` (`pub use child::*`) followed to the
file that defines them. `python3 infra/check-structure.py [--report]` prints the figures too.
"""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "shared" / "src"
MAX_PORT_METHODS = 15
MAX_CODE_LINES = 800
WORKFLOW_MODULES = ("steps", "lambda", "engine", "index")

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ITEM_DEF = re.compile(
    rf"^\s*pub(?:\([^)]*\))?\s+(?:async\s+)?(?:unsafe\s+)?"
    rf"(?:struct|enum|fn|trait|type|const|static|mod|union)\s+({IDENT})",
    re.M,
)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def strip_test_modules(text):
    """Removes `#[cfg(test)] mod x { … }` blocks (balanced braces)."""
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def module_path(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def module_file(parts):
    base = SRC.joinpath(*parts) if parts else SRC / "lib"
    for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
        if candidate.is_file():
            return candidate
    if not parts:
        return SRC / "lib.rs"
    return None


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` → ["a::b", "a::c::d", "a::c::e"]."""
    tree = tree.strip()
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix = tree[:i]
                inner = tree[i + 1 : tree.rindex("}")]
                items, start, d = [], 0, 0
                for k, c in enumerate(inner):
                    d += {"{": 1, "}": -1}.get(c, 0)
                    if c == "," and d == 0:
                        items.append(inner[start:k])
                        start = k + 1
                items.append(inner[start:])
                return [
                    p
                    for item in items
                    if item.strip()
                    for p in expand_use_tree(prefix + item.strip())
                ]
            depth += 1
    return [re.sub(r"\s+as\s+\w+$", "", tree)]


class Crate:
    def __init__(self):
        self.files = sorted(SRC.rglob("*.rs"))
        self.text = {f: strip_comments(f.read_text()) for f in self.files}
        self.defs = {f: set(ITEM_DEF.findall(strip_test_modules(self.text[f]))) for f in self.files}

    def children(self, mod_file):
        parts = module_path(mod_file)
        return [f for f in self.files if f != mod_file and module_path(f)[:-1] == parts]

    def resolve(self, parts):
        """The file that defines the item at `parts` (a crate-absolute path)."""
        for n in range(len(parts), -1, -1):
            file = module_file(parts[:n])
            if file is None:
                continue
            rest = parts[n:]
            if rest and file.name in ("mod.rs", "lib.rs"):
                for child in self.children(file):
                    if rest[0] in self.defs[child]:
                        return child
            return file
        return None

    def imports(self, file):
        here = module_path(file)
        here_module = here
        text = strip_test_modules(self.text[file])
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths.extend(expand_use_tree(m.group(1)))
        paths.extend(re.findall(rf"\b(?:crate|super|self)(?:::{IDENT})+", text))
        targets = set()
        for p in paths:
            segs = [s for s in p.replace(" ", "").split("::") if s]
            if not segs or segs[0] not in ("crate", "super", "self"):
                continue
            base = list(here_module)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            if segs and segs[0] == "crate":
                base, segs = [], segs[1:]
            segs = [s for s in segs if s not in ("*",)]
            target = self.resolve(base + segs)
            if target is not None and target != file:
                targets.add(target)
        return targets


def rel(f):
    return str(f.relative_to(ROOT))


def check_layers(crate, breaches):
    for f in crate.files:
        top = module_path(f)[:1]
        if top == ["adapters"]:
            for t in crate.imports(f):
                if module_path(t)[:1] and module_path(t)[0] in WORKFLOW_MODULES:
                    breaches.append(f"adapter {rel(f)} imports {rel(t)}")
        if top == ["ports"]:
            for t in crate.imports(f):
                if module_path(t)[:1] == ["steps"]:
                    breaches.append(f"port {rel(f)} imports the step {rel(t)}")


def check_cycles(crate, breaches):
    graph = {}
    for f in crate.files:
        own_children = set(crate.children(f)) if f.name in ("mod.rs", "lib.rs") else set()
        graph[f] = {
            t
            for t in crate.imports(f)
            if t not in own_children and not (t.name in ("mod.rs", "lib.rs") and f in crate.children(t))
        }
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    for comp in sccs:
        names = sorted(rel(f) for f in comp)
        breaches.append(f"import cycle among {len(names)} files: {', '.join(names)}")


def check_ports(crate, breaches, report):
    for f in crate.files:
        if module_path(f)[:1] != ["ports"]:
            continue
        text = strip_test_modules(crate.text[f])
        for m in re.finditer(rf"\bpub\s+trait\s+({IDENT})[^{{]*\{{", text):
            depth, j, body_start = 1, m.end(), m.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            body = text[body_start : j - 1]
            # Methods at the trait's own depth (default bodies' nested fns not counted).
            count, d = 0, 0
            for tok in re.finditer(r"[{}]|\bfn\b", body):
                t = tok.group(0)
                if t == "{":
                    d += 1
                elif t == "}":
                    d -= 1
                elif d == 0:
                    count += 1
            report.append(f"port {m.group(1)}: {count} methods")
            if count > MAX_PORT_METHODS:
                breaches.append(f"port trait {m.group(1)} ({rel(f)}) has {count} methods (at most {MAX_PORT_METHODS})")


def code_lines(text):
    text = strip_test_modules(strip_comments(text))
    return sum(1 for line in text.splitlines() if line.strip())


def check_sizes(breaches, report):
    for crate_dir in ("shared/src", "cli/src", "functions"):
        for f in sorted((ROOT / crate_dir).rglob("*.rs")):
            if "/target/" in str(f):
                continue
            n = code_lines(f.read_text())
            if n > MAX_CODE_LINES:
                breaches.append(f"{rel(f)} has {n} code lines (at most {MAX_CODE_LINES})")
            elif n > MAX_CODE_LINES * 0.8:
                report.append(f"{rel(f)}: {n} code lines")


def check_cli_tests(breaches):
    tests = ROOT / "cli" / "tests"
    binaries = sorted(p.name for p in tests.glob("*.rs")) + sorted(
        f"{p.parent.name}/main.rs" for p in tests.glob("*/main.rs")
    )
    if len(binaries) > 1:
        breaches.append(f"cli/tests has {len(binaries)} test binaries ({', '.join(binaries)}); one is the rule")


def library_name(crate_dir, name, spec):
    """The name code uses for a dependency: a path dependency's `[lib] name`, else the key."""
    if isinstance(spec, dict) and "path" in spec:
        target = tomllib.loads((crate_dir / spec["path"] / "Cargo.toml").read_text())
        if "lib" in target and "name" in target["lib"]:
            return target["lib"]["name"]
    return name.replace("-", "_")


def check_dependencies(breaches):
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    for member in workspace["workspace"]["members"]:
        for crate_dir in sorted(ROOT.glob(member)):
            manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text())
            sources = "\n".join(
                strip_comments(f.read_text())
                for sub in ("src", "tests", "benches", "examples")
                for f in (crate_dir / sub).rglob("*.rs")
            )
            for section in ("dependencies", "dev-dependencies"):
                for name, spec in manifest.get(section, {}).items():
                    krate = spec.get("package", name) if isinstance(spec, dict) else name
                    ident = library_name(crate_dir, name, spec)
                    if not re.search(rf"\b{ident}\b", sources):
                        breaches.append(f"{crate_dir.name}: {section} `{name}` ({krate}) is declared but never used")


def main():
    crate = Crate()
    breaches, report = [], []
    check_layers(crate, breaches)
    check_cycles(crate, breaches)
    check_ports(crate, breaches, report)
    check_sizes(breaches, report)
    check_cli_tests(breaches)
    check_dependencies(breaches)
    if "--report" in sys.argv:
        for line in report:
            print(f"  {line}")
    for b in breaches:
        print(f"structure: {b}")
    if breaches:
        print(f"structure: {len(breaches)} breach(es) of ARCHITECTURE.md's rules")
        return 1
    print("structure: every rule of ARCHITECTURE.md holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
