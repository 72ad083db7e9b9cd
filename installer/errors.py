"""The installer's one error: what is wrong, and what to do about it."""

from __future__ import annotations


class InstallError(Exception):
    """A failure an installer can act on. str() is what is wrong; hint is what to do next.
    The command line prints both, without a traceback, and exits with code."""

    def __init__(self, message: str, hint: str = "", code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code

    def render(self, prog: str) -> str:
        text = f"{prog}: {self.message}"
        if self.hint:
            text += "\n" + "\n".join("  " + line for line in self.hint.splitlines())
        return text
