"""Several choices per request (``n``): concurrent upstream calls and interleaved events.

1min.ai returns one answer per call, so ``n`` choices cost ``n`` upstream calls. They run
in a thread pool of their own; a single choice runs in the request thread.
"""

from __future__ import annotations

import contextvars
import logging
import queue
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterator, TypeVar

from routes.functions.answer_func import AnswerEvent, ChoiceResult, ChoiceRun, collect_choice
from utils.errors import InvalidRequestError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CHOICE_DONE = object()


def check_choice_count(count: int, max_n: int, param: str = "n") -> None:
    """Raise a 400 when a request asks for more choices than MAX_N allows."""
    if count > max_n:
        raise InvalidRequestError(
            f"Invalid value for '{param}': this relay returns at most {max_n} choices per request "
            f"(each one is a separate 1min.ai call), but {count} were requested.",
            param=param,
            code="invalid_value",
        )


class ChoiceGroup:
    """The choices of one request, run concurrently when there are several.

    A streaming caller calls ``start()`` (the first upstream reads, so early failures are
    still HTTP errors), then iterates ``events()``; ``close()`` ends every upstream request.
    A non-streaming caller calls ``collect()``.
    """

    def __init__(self, runs: list[ChoiceRun]) -> None:
        self.runs = runs
        self._pool: ThreadPoolExecutor | None = None
        if len(runs) > 1:
            self._pool = ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="choice")

    def _submit(self, function: Callable[..., T], *args: object) -> Future[T]:
        # Each task runs in a copy of the request's context, so its log lines carry the request id.
        assert self._pool is not None
        return self._pool.submit(contextvars.copy_context().run, function, *args)

    def _run_all(self, function: Callable[[ChoiceRun], T]) -> list[T]:
        """Apply ``function`` to every run concurrently; raise the first failure after all finished."""
        if self._pool is None:
            return [function(self.runs[0])]
        futures = [self._submit(function, run) for run in self.runs]
        wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def start(self) -> None:
        try:
            self._run_all(ChoiceRun.start)
        except BaseException:
            self.close()
            raise

    def collect(self) -> list[ChoiceResult]:
        try:
            return self._run_all(lambda run: collect_choice(run.events()))
        finally:
            self.close()

    def events(self) -> Iterator[tuple[int, AnswerEvent]]:
        """Yield ``(choice index, event)`` as the choices produce them, interleaved."""
        try:
            if self._pool is None:
                run = self.runs[0]
                for event in run.events():
                    yield run.index, event
                return
            yield from self._interleaved()
        finally:
            self.close()

    def _interleaved(self) -> Iterator[tuple[int, AnswerEvent]]:
        events: queue.Queue = queue.Queue()

        def produce(run: ChoiceRun) -> None:
            try:
                for event in run.events():
                    events.put((run.index, event))
            except BaseException as error:  # handed to the consuming thread, which raises it
                events.put((run.index, error))
            else:
                events.put((run.index, _CHOICE_DONE))

        for run in self.runs:
            self._submit(produce, run)
        running = len(self.runs)
        while running:
            index, item = events.get()
            if item is _CHOICE_DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item

    def close(self) -> None:
        """Close every upstream request and let the worker threads end."""
        for run in self.runs:
            try:
                run.close()
            except Exception:  # closing is best effort; the request is over either way
                logger.debug("closing choice %d failed", run.index, exc_info=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
