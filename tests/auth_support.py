"""Signing AppTests in as the demo identities of ordertower/roles.yaml."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ordertower.devauth import DEMO_USERS

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"


def claims(role: str) -> dict[str, object]:
    """The ID-token claims ``st.user`` shows for the demo identity of ``role``."""
    return {**DEMO_USERS[role], "is_logged_in": True, "iss": "http://127.0.0.1:9400"}


def app_as(role: str | None, timeout: float = 60) -> AppTest:
    """The app, signed in as ``role``'s demo identity (``None``: anonymous)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.user = claims(role) if role else {"is_logged_in": False}
    return at


def open_page(at: AppTest, script: str) -> AppTest:
    """Run the app, then switch to ``views/<script>.py`` (st.navigation registers the pages'
    URLs on the first run)."""
    at.run()
    at.switch_page(f"views/{script}.py")
    at.run()
    return at


#: CPython 3.11 before 3.11.8 (gh-106905) may fail to compile a script with this SystemError
#: when another thread builds an AST at the same moment; Streamlit then logs "Script compilation
#: error" and the run renders nothing. The interpreter here is 3.11.7 (no later 3.11 is
#: installable offline), so a run that met exactly this race is run again.
_AST_RACE = "AST constructor recursion depth mismatch"
_SCRIPT_RUNNER_LOG = "streamlit.runtime.scriptrunner.script_runner"


class _CompileErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.raced = False

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, SystemError) and _AST_RACE in str(error):
            self.raced = True


@contextlib.contextmanager
def _watch_compile_errors() -> Iterator[_CompileErrors]:
    handler = _CompileErrors()
    logger = logging.getLogger(_SCRIPT_RUNNER_LOG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def run_surviving_the_ast_race(run):  # type: ignore[no-untyped-def]
    """Wrap ``AppTest.run``: rerun (at most twice) a run whose script failed to compile only
    because of the CPython race above; any other compile error stays as it was."""

    @functools.wraps(run)
    def wrapped(self: AppTest, *args: object, **kwargs: object) -> AppTest:
        for _ in range(2):
            with _watch_compile_errors() as errors:
                result = run(self, *args, **kwargs)
            if not errors.raced:
                return result
        return run(self, *args, **kwargs)

    return wrapped
