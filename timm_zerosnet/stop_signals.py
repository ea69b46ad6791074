"""SIGTERM and SIGHUP stop a command-line tool as Ctrl-C does, so that it cleans up on the way out.

``kill`` or a scheduler's preemption (SIGTERM) and a closed terminal or ssh session (SIGHUP) end a Python process
at once under the default handlers: a training run's run.json kept saying 'running', an export left its temporary
folder behind. Inside ``stopping_like_ctrl_c(handler)`` they call ``handler``, which raises a KeyboardInterrupt of the
tool's own, and the tool's ``except KeyboardInterrupt`` does the rest.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "stopping_like_ctrl_c"]

# SIGTERM (``kill``, a scheduler's preemption) and SIGHUP (the terminal or ssh session closed) where the platform has it
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stopping_like_ctrl_c(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """While inside, STOP_SIGNALS call ``handler(signum, frame)``; the previous handlers are restored on the way out.
    Only the main thread can set handlers (elsewhere nothing changes), and a signal ignored on purpose stays ignored
    (`nohup` ignores SIGHUP so that the command outlives the terminal)."""
    main_thread = threading.current_thread() is threading.main_thread()
    ours = [signum for signum in STOP_SIGNALS if main_thread and signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in ours}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)
