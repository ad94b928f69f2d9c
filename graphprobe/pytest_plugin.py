"""The pytest plugin: a ``grad_flow`` fixture, and ``--graphprobe-report DIR`` for failing tests.

Installed with graphprobe (a ``pytest11`` entry point), so any test can ask for it::

    def test_detector_loss_trains_the_depth_net(grad_flow):
        depth, det = DepthNet(), Detector()
        loss = pipeline(depth, det, torch.randn(1, 1, 8, 8))   # recorded under graphprobe.trace()
        grad_flow.check(loss, depth, det)                      # assert_grad_flow, named as here

The fixture runs the test under :func:`graphprobe.trace` (so do not open a second trace inside
it), and gives :meth:`GradFlow.check` (:func:`graphprobe.assert_grad_flow`) and
:meth:`GradFlow.probe` (:func:`graphprobe.probe`), both naming things with the test's own
variable names. With ``pytest --graphprobe-report DIR``, each failing test that used the fixture
gets its picture, ``DIR/<test id>.svg``: the graph of the last loss it checked or probed (a DOT
file instead where no layout engine is found). Without the option nothing is written.

Loading the plugin imports neither torch nor the rest of graphprobe; that happens when a test
asks for the fixture. ``-p no:graphprobe.pytest_plugin`` turns it off.
"""
from __future__ import annotations

import os
import re
import sys
import types
from typing import Any, Callable, Generator, Iterator

import pytest

__all__ = ["GradFlow", "grad_flow"]


def _call_with_names_of(frame: types.FrameType, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` so that the frame it sees as its caller holds the names of ``frame``.

    ``probe`` and ``assert_grad_flow`` name losses and parameters from their caller's frame; called
    from here, that frame would be this helper's. ``eval`` with a copy of the test's locals makes a
    frame whose names are the test's (ours start with ``_``, which naming skips), hidden from
    pytest's tracebacks by ``__tracebackhide__``.
    """
    __tracebackhide__ = True
    # The copy holds the test's tensors only as long as the eval frame lives (and a failure's
    # traceback, which pytest reads __tracebackhide__ from: so it is not cleared here).
    ns = dict(frame.f_locals)
    ns.update(__tracebackhide__=True, _gp_fn=fn, _gp_args=args, _gp_kwargs=kwargs)
    return eval("_gp_fn(*_gp_args, **_gp_kwargs)", frame.f_globals, ns)


class GradFlow:
    """What the ``grad_flow`` fixture gives a test: checks that name things as the test does."""

    def __init__(self, trace: Any) -> None:
        #: The :class:`graphprobe.Trace` recording the test.
        self.trace = trace
        #: The report of the last :meth:`check` or :meth:`probe` (the failing test's picture).
        self.report: Any = None

    def check(self, loss: Any, *targets: Any) -> None:
        """:func:`graphprobe.assert_grad_flow` (``loss`` reaches every parameter of ``targets``).

        Raises
        ------
        AssertionError
            As ``assert_grad_flow`` does; the report is kept for ``--graphprobe-report``.
        """
        __tracebackhide__ = True
        from .assertions import assert_grad_flow
        from .probing import probe

        frame = sys._getframe(1)
        try:
            try:
                _call_with_names_of(frame, assert_grad_flow, loss, *targets)
            except AssertionError:
                # Only a failure needs the picture: probe the loss once more, named as the test names it.
                self.report = _call_with_names_of(frame, probe, loss, trace=self.trace)
                raise
        finally:
            del frame

    def probe(self, *losses: Any, **options: Any) -> Any:
        """:func:`graphprobe.probe` of ``losses``, named as in the test; returns the Report."""
        __tracebackhide__ = True
        from .probing import probe

        frame = sys._getframe(1)
        try:
            options.setdefault("trace", self.trace)
            self.report = _call_with_names_of(frame, probe, *losses, **options)
        finally:
            del frame
        return self.report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("graphprobe", "graphprobe (gradient flow)")
    group.addoption("--graphprobe-report", metavar="DIR", default=None,
                    help="write the graph of each failing test that used the grad_flow fixture to DIR/<test id>.svg")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "graphprobe: the test uses graphprobe's grad_flow fixture")


@pytest.fixture
def grad_flow(request: pytest.FixtureRequest) -> Iterator[GradFlow]:
    """Run the test under :func:`graphprobe.trace`; see :class:`GradFlow`."""
    from .record.recorder import Trace

    tr = Trace()
    tr.__enter__()
    helper = GradFlow(tr)
    request.node.stash[_KEY] = helper
    try:
        yield helper
    finally:
        if tr.active:
            tr.__exit__(None, None, None)


_KEY = pytest.StashKey[GradFlow]()


def _file_name(nodeid: str) -> str:
    """``tests/test_x.py::test_a[1-b]`` -> ``tests_test_x.py__test_a_1-b_``: one safe file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", nodeid.replace("::", "__"))[:200]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield  # pluggy's Result (an old-style hookwrapper works with every pytest since 3)
    rep = outcome.get_result()
    folder = item.config.getoption("--graphprobe-report")
    if not folder or rep.when != "call" or not rep.failed:
        return
    helper = item.stash.get(_KEY, None)
    if helper is None or helper.report is None:
        return
    report, helper.report = helper.report, None  # hold no graph past the test
    path = _write_picture(report, folder, _file_name(item.nodeid))
    rep.sections.append(("graphprobe", f"the graph of the failing check: {path}"))


def _write_picture(report: Any, folder: str, stem: str) -> str:
    from .errors import GraphprobeError
    from .io import write_atomic

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, stem + ".svg")
    try:
        report.to_svg(path)
    except GraphprobeError:  # no layout engine, or the layout ran too long: the DOT still helps
        path = os.path.join(folder, stem + ".dot")
        write_atomic(path, report.to_dot().encode("utf-8"))
    return path
