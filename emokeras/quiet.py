"""A quiet start for the command line: no TensorFlow C++ log lines on stderr unless asked for.

TensorFlow 2.21 logs through absl's C++ logging before anything can configure it
("WARNING: All log messages before absl::InitializeLog() ...", the oneDNN notice, CUDA probes,
``E0000 ... failed call to cuInit`` on a machine without a GPU); ``TF_CPP_MIN_LOG_LEVEL`` no
longer silences those. So, besides setting it, :func:`quiet_tensorflow` puts a filter on the
process's file descriptor 2 that drops such lines and passes everything else through. It is for
the command-line entry points only: a library must not take over its host's stderr.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

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
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        pending = b""
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
            if out:
                os.write(real, out)
        if pending and not is_tensorflow_log(pending):
            os.write(real, pending)
        os.close(read_end)

    thread = threading.Thread(target=pump, name="emokeras-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        # the last lines (an error message) must not be lost at exit: close the pipe, drain it
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)
        thread.join(timeout=2)

    atexit.register(restore)
