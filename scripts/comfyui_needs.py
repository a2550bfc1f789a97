"""What a ComfyUI tree needs from its environment before it can start: used by scripts/setup.sh.

ComfyUI's requirements.txt names torchaudio in every release, but only some releases fail without it: 0.3.75
imports it only in optional modules (comfy_extras, audio encoders reached from functions), while 0.33's core
reaches `import torchaudio` at start (comfy/sd.py -> comfy/ldm/lightricks/vae/audio_vae.py). So the question is
answered from the code, not the requirements: follow the module-level imports from main.py through the tree's
own modules and report whether an import of torchaudio that no `try` guards is reached.

    python scripts/comfyui_needs.py <comfyui dir>            # prints "torchaudio" or nothing
    python scripts/comfyui_needs.py <comfyui dir> --trio     # prints the torch trio/pair to install
"""

from __future__ import annotations

import argparse
import ast
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("facecontrol.comfyui_needs")

ENTRY_POINTS = ("main.py", "server.py", "nodes.py", "execution.py")
# The torch builds that exist on the registry for this machine (docs/COMPATIBILITY.md).
TRIO_WITH_AUDIO = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.*")
PAIR_WITHOUT_AUDIO = ("torch==2.14.1", "torchvision==0.29.1")


def _guarded_imports(node: ast.AST, guarded: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Import statements executed when the module is imported, with whether a try block guards them."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, guarded
        elif isinstance(child, ast.Try) or type(child).__name__ == "TryStar":
            for stmt in child.body:
                yield from _guarded_imports(ast.Module(body=[stmt], type_ignores=[]), True)
            for handler in child.handlers:
                yield from _guarded_imports(handler, guarded)
            for stmt in [*child.orelse, *child.finalbody]:
                yield from _guarded_imports(ast.Module(body=[stmt], type_ignores=[]), guarded)
        else:
            yield from _guarded_imports(child, guarded)


def _module_path(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(root: Path, path: Path) -> str:
    # a package's __init__.py and a plain module both resolve relative imports against their folder
    return ".".join(path.relative_to(root).parent.parts)


def _imported_names(root: Path, path: Path, stmt: ast.AST) -> list[str]:
    """Dotted module names an import statement may load (its parents included, as Python imports them)."""
    if isinstance(stmt, ast.Import):
        targets = [alias.name for alias in stmt.names]
    else:
        base = stmt.module or ""
        if stmt.level:
            package = [part for part in _package_of(root, path).split(".") if part]
            package = package[: len(package) - (stmt.level - 1)]
            base = ".".join([*package, base] if base else package)
        targets = [base] + [f"{base}.{alias.name}" if base else alias.name for alias in stmt.names]
    names: list[str] = []
    for target in targets:
        parts = target.split(".")
        names += [".".join(parts[: i + 1]) for i in range(len(parts)) if parts[0]]
    return names


def unguarded_external_imports(comfyui_dir: Path) -> dict[str, str]:
    """Top-level package -> the tree's module that imports it, for imports reached at start without a try."""
    root = Path(comfyui_dir)
    todo = [root / name for name in ENTRY_POINTS if (root / name).is_file()]
    seen: set[Path] = set()
    found: dict[str, str] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            log.warning("could not parse %s", path)
            continue
        for stmt, guarded in _guarded_imports(tree, False):
            for name in _imported_names(root, path, stmt):
                local = _module_path(root, name)
                if local is not None:
                    todo.append(local)
                elif not guarded and "." not in name:
                    found.setdefault(name, str(path.relative_to(root)))
    return found


def needs_torchaudio(comfyui_dir: Path) -> bool:
    return "torchaudio" in unguarded_external_imports(comfyui_dir)


def torch_specs(comfyui_dir: Path) -> tuple[str, ...]:
    return TRIO_WITH_AUDIO if needs_torchaudio(comfyui_dir) else PAIR_WITHOUT_AUDIO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comfyui_dir", type=Path)
    parser.add_argument("--trio", action="store_true", help="print the torch specs to install, one a line")
    parser.add_argument("--why", action="store_true", help="print which module imports torchaudio")
    args = parser.parse_args(argv)
    if args.why:
        print(unguarded_external_imports(args.comfyui_dir).get("torchaudio", ""))
    elif args.trio:
        print("\n".join(torch_specs(args.comfyui_dir)))
    elif needs_torchaudio(args.comfyui_dir):
        print("torchaudio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
