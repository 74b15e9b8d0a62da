#!/usr/bin/env python3
"""Fails when a module includes a header from a module DESIGN.md does not allow.

The allowed table mirrors DESIGN.md's "Modules" section; keep both in step.
Usage: tools/check_deps.py [repo_root]
"""
import os
import re
import sys

ALLOWED = {
    "common": set(),
    "model": {"common"},
    "store": {"model", "common"},
    "catalog": {"model", "common"},
    "feed": {"store", "catalog", "model", "common"},
    "credentials": {"feed", "catalog", "model", "common"},
    "auth": {"common"},
    "identity": {"catalog", "auth", "model", "common"},
    "flavour": {"auth", "model", "common"},
    "http": {"common"},
    "service": {"http", "identity", "catalog", "flavour", "auth", "common", "model"},
    "admin": {"http", "store", "catalog", "feed", "model", "common"},
    "client": {"http", "common"},
    "proxy": {"http", "auth", "common"},
    "netsetup": {"common"},
    "app": None,  # the composition root may use everything
}

# A flavour's module (flavour/module.h and flavour/<name>/<name>_module.*: its
# options and runtime, what serve and proxy see of it) may also use what its
# runtime needs; the renderers beside it stay pure and may not include it.
FLAVOUR_MODULE = re.compile(r"^src/flavour/(module\.h|[a-z0-9_]+/[a-z0-9_]+_module\.(h|cc))$")
FLAVOUR_MODULE_INCLUDE = re.compile(
    r'^\s*#\s*include\s+"(flavour/module\.h|flavour/[a-z0-9_]+/[a-z0-9_]+_module\.h)"')
FLAVOUR_MODULE_ALLOWED = ALLOWED["flavour"] | {"store", "catalog", "feed", "credentials", "http"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(__file__))
    src = os.path.join(root, "src")
    bad = []
    for module in sorted(os.listdir(src)):
        path = os.path.join(src, module)
        if not os.path.isdir(path):
            continue
        if module not in ALLOWED:
            bad.append(f"src/{module}: module not in DESIGN.md's table")
            continue
        for dirpath, _, files in os.walk(path):
            for name in files:
                if not name.endswith((".h", ".cc")):
                    continue
                file = os.path.join(dirpath, name)
                rel = os.path.relpath(file, root).replace(os.sep, "/")
                allowed = ALLOWED[module]
                is_flavour_module = module == "flavour" and FLAVOUR_MODULE.match(rel)
                if is_flavour_module:
                    allowed = FLAVOUR_MODULE_ALLOWED
                with open(file, encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        if module == "flavour" and not is_flavour_module:
                            if FLAVOUR_MODULE_INCLUDE.match(line):
                                bad.append(f"{rel}:{lineno}: a flavour's renderer may not "
                                           "include its module")
                                continue
                        m = INCLUDE.match(line)
                        if not m or allowed is None:
                            continue
                        dep = m.group(1)
                        if dep != module and dep in ALLOWED and dep not in allowed:
                            bad.append(f"{rel}:{lineno}: {module} may not include {dep}/")
    for b in bad:
        print(b)
    print(f"dependency check: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
