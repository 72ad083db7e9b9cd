"""Project lint: the boundaries ruff and mypy cannot see (../shared/STYLE.md, lessons 1 and 5).

- protocol/ is sans-IO: it imports none of machine, asyncio, socket, serial, time.
- Only firmware/board.py imports machine.
Run from the repository root; exits 1 and names file, line and rule on a violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

IO_MODULES = {"machine", "asyncio", "socket", "serial", "time"}
MACHINE_ALLOWED = {Path("firmware/board.py")}
CHECKED = ("firmware", "gateway", "protocol", "hil_tests", "tests", "bench", "tools")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) for every import statement, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def check(root: Path) -> list[str]:
    problems = []
    for top in CHECKED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root)
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
            except SyntaxError as exc:
                problems.append(f"{rel}:{exc.lineno}: does not parse: {exc.msg}")
                continue
            for line, module in imported_modules(tree):
                if rel.parts[0] == "protocol" and module in IO_MODULES:
                    problems.append(
                        f"{rel}:{line}: protocol/ must stay sans-IO but imports {module!r}; "
                        "pass bytes in and out, and do I/O in firmware/ or gateway/"
                    )
                elif module == "machine" and rel not in MACHINE_ALLOWED:
                    problems.append(
                        f"{rel}:{line}: imports 'machine'; only firmware/board.py may, "
                        "so hardware is passed in and the emulated board can replace it"
                    )
    return problems


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0] if argv else ".")
    problems = check(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"project lint: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("project lint: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
