"""A trace belongs to one thread: another thread can't start one while it records."""
from __future__ import annotations

import graphprobe
from graphprobe.record.recorder import active_trace


def test_a_second_thread_cannot_start_a_trace_while_one_records():
    import threading

    errors = []

    def other():
        try:
            with graphprobe.trace():
                pass
        except graphprobe.GraphprobeError as e:
            errors.append(str(e))

    with graphprobe.trace():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert active_trace() is not None  # this thread's trace still records
    assert errors and "another thread" in errors[0]
