"""A quiet start for the command line: no TensorFlow C++ log lines on stderr unless asked for.

TensorFlow 2.21 logs through absl's C++ logging before anything can configure it
("WARNING: All log messages before absl::InitializeLog() ...", the oneDNN notice, CUDA probes,
``E0000 ... failed call to cuInit`` on a machine without a GPU); ``TF_CPP_MIN_LOG_LEVEL`` no
longer silences those. So, besides setting it, :func:`quiet_tensorflow` puts a filter on the
process's file descriptor 2 that drops such lines and passes everything else through. The filter
is a forked process (a thread where there is no fork, or where threads already run), so that it
outlives an abort. It is for the command-line entry points only: a library must not take over
its host's stderr.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import sys
import threading
import time

#: A glog/absl C++ log line: severity, date, time, thread id, file:line]. Fatal (F) lines are
#: not matched: they are often the only explanation of an abort, so they always reach stderr.
CPP_LOG_LINE = re.compile(rb"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\]")
#: absl's line before its logging is initialised
ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"

_installed = False


def is_tensorflow_log(line: bytes) -> bool:
    """Whether a stderr line is TensorFlow's C++ logging (dropped by the filter)."""
    return bool(CPP_LOG_LINE.match(line)) or line.startswith(ABSL_PREAMBLE)


def quiet_tensorflow(verbose: bool = False, filter_stderr: bool = True) -> None:
    """Before TensorFlow is imported: keep its start-up logging off stderr (``verbose`` keeps
    it). ``filter_stderr`` also drops TensorFlow's C++ log lines from file descriptor 2 (for a
    program's entry point only). Python's own log messages, warnings, progress bars and errors
    still reach stderr. A ``TF_CPP_MIN_LOG_LEVEL`` already set is left as it is."""
    global _installed
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import absl.logging  # light: absl-py alone, no TensorFlow

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    logging.getLogger("absl").setLevel(logging.ERROR)
    if not filter_stderr or _installed:
        return
    _install_filter()
    _installed = True


def _install_filter() -> None:
    try:
        real = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:  # no usable stderr: nothing to filter
        return
    sys.stderr.flush()
    if hasattr(os, "fork") and threading.active_count() == 1:
        # The filter runs in its own process: a C++ check failure aborts this one at once (no
        # atexit, no Python thread runs again), and its last lines, the only explanation, would
        # die in the pipe with a thread. A process drains the pipe until the last writer is gone.
        # (Only from a process with one thread, as at a program's start: forking one with more
        # can leave a lock held in the child.)
        filter_pid = os.fork()
        if filter_pid == 0:
            _run_filter_process(read_end, real)
        os.close(read_end)
    else:
        filter_pid = None
        threading.Thread(target=_pump, args=(read_end, real), name="emokeras-stderr-filter",
                         daemon=True).start()
    os.dup2(write_end, 2)
    os.close(write_end)

    def restore() -> None:
        # the last lines (an error message) come before the shell's prompt: end the pipe, wait
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)
        if filter_pid is not None:
            _wait_for(filter_pid, seconds=2.0)

    atexit.register(restore)


def _run_filter_process(read_end: int, real: int) -> None:
    """The forked filter's whole life: it holds nothing of its parent's but the pipe and the
    real stderr (so readers of the parent's other pipes see their end when the parent ends),
    ignores the terminal's Ctrl-C (which reaches the whole process group; the parent's traceback
    must still pass) and ends, without any Python clean-up, when the pipe does."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        keep = sorted((read_end, real))
        os.closerange(0, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, os.sysconf("SC_OPEN_MAX"))
        _pump(read_end, real)
    finally:
        os._exit(0)


def _pump(read_end: int, real: int) -> None:
    """Copy the pipe to the real stderr line by line, without TensorFlow's C++ log lines, until
    every writer has closed it. Once stderr is gone (a closed terminal) the rest is read and
    dropped, so the writers never see a broken pipe."""
    pending = b""
    writable = True

    def write(data: bytes) -> None:
        nonlocal writable
        if data and writable:
            try:
                os.write(real, data)
            except OSError:
                writable = False

    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not is_tensorflow_log(line))
        # a progress bar redraws with \r and no newline: pass it on at once
        if b"\r" in pending and not CPP_LOG_LINE.match(pending):
            cut = pending.rindex(b"\r") + 1
            out, pending = out + pending[:cut], pending[cut:]
        write(out)
    if pending and not is_tensorflow_log(pending):
        write(pending)
    os.close(read_end)


def _wait_for(pid: int, seconds: float) -> None:
    """Reap the filter process, giving it ``seconds`` to write what is left in the pipe (a
    grandchild that kept stderr open keeps it alive; it then ends with that one)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.01)
