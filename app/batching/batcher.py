"""The dynamic batcher: one queue and one dispatcher per served variant.

A dispatcher waits for a free model instance first and only then forms a batch, so requests that arrive
while every instance computes pile up into the next, larger batch. A batch is dispatched as soon as it is
full, as soon as a preferred size can be formed, or when its oldest request has waited ``max_queue_delay_ms``
(or earlier with ``adaptive_delay``, when no other request is in sight to join the batch).
Model calls run on the variant's own threads, so the server keeps parsing while a batch computes; only calls
measured shorter than ``inline_compute_below_ms`` run on the event loop, where they cost less than the
thread handoff would.
"""

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from app.batching.calls import Batch, Job, Part, Stuck, concatenate, distribute, fail, request_ids
from app.batching.forming import collect, dispatch_reason, trim
from app.batching.pending import PendingRequest, signature_of
from app.errors import ClientTimeout, ComputeTimeout, ModelFailed, Overloaded, QueueTimeout, ServingError, Unavailable
from app.processing.pipeline import Computed, Pipeline
from app.schema.manifest import BatchingSpec
from app.telemetry.request_ids import REQUEST_ID
from app.telemetry.views import VariantMetrics

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"


class DynamicBatcher:
    def __init__(
        self, label: str, pipeline: Pipeline, spec: BatchingSpec, metrics: VariantMetrics, alone: bool = False
    ) -> None:
        self.label = label
        """Names the variant in errors, e.g. ``model 'digits' variant 'fp32'``."""
        self._pipeline = pipeline
        self._spec = spec
        self._metrics = metrics
        metrics.queue_capacity.set(spec.max_queue_size)
        # 0: batching off, every request is its own model call; so it is for a variant whose answers depend on
        # their batch companions (``alone``), or one client could change another's answer.
        batching = spec.enabled and not alone
        self._max_samples = spec.max_batch_size if batching else 0
        self._delay = spec.max_queue_delay_ms / 1000 if batching else 0.0
        self._preferred = sorted(spec.preferred_batch_sizes, reverse=True) if batching else []
        self._ready_at = min(self._preferred, default=self._max_samples)
        self._levels: list[deque[PendingRequest]] = [deque() for _ in range(spec.priority_levels)]
        self._level_counts = [0] * spec.priority_levels
        self._queued = 0
        self._queued_samples = 0
        self._executor = ThreadPoolExecutor(spec.instances, thread_name_prefix="servometer-batch")
        self._closing = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        # Moving average of compute seconds per sample: calls predicted shorter than a thread handoff (which
        # costs ~0.1-0.2 ms on a busy core) run on the event loop instead.
        self._per_sample: float | None = None
        self._compute_timeout = spec.compute_timeout_ms / 1000
        self._inline_below = 0.0 if self._compute_timeout else spec.inline_compute_below_ms / 1000
        self._busy = 0  # batches computing now
        self._last_arrival = 0.0  # loop.time() of the latest submit, for adaptive_delay's quiet period

    def start(self) -> None:
        """Start the dispatcher; call from the running event loop, which owns the queue's events."""
        self._loop = asyncio.get_running_loop()
        self._arrival = asyncio.Event()
        self._slots = asyncio.Semaphore(self._spec.instances)
        # A context of its own: started while a request is handled (a model load), it must not carry that
        # request's X-Request-Id into the log lines of every batch after.
        self._task = asyncio.create_task(
            self._dispatch_loop(), name=f"batcher {self.label}", context=contextvars.Context()
        )

    async def warm_up(self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> None:
        """One model call on the batcher's own thread, outside the queue and the metrics, so lazy initialisation
        (the thread, memory arenas, kernels chosen on the first run) is paid before readiness, not by the first
        request. Raises what the model raises."""
        await self._loop.run_in_executor(self._executor, self._pipeline.run, inputs, outputs)

    @property
    def depth(self) -> int:
        return self._queued

    def submit(
        self,
        inputs: dict[str, np.ndarray],
        outputs: tuple[str, ...],
        level: int,
        timeout: float | None,
        client_timeout: bool = False,
    ) -> PendingRequest:
        """Queue a request (already validated) and return it; await its ``future`` for its outputs.
        ``client_timeout`` says the client chose ``timeout``, so its expiry is counted as the client's."""
        if self._closing:
            self._metrics.dropped("shutdown")
            raise Unavailable(f"{self.label} is shutting down")
        if self._queued >= self._spec.max_queue_size:
            self._reject("queue_full", f"the queue of {self.label} is full ({self._spec.max_queue_size} requests)")
        level_limit = self._spec.max_queue_size_per_level.get(level)
        if level_limit is not None and self._level_counts[level - 1] >= level_limit:
            self._reject(
                "priority_queue_full", f"the priority {level} queue of {self.label} is full ({level_limit} requests)"
            )
        first = next(iter(inputs.values()))
        now = self._last_arrival = self._loop.time()
        pending = PendingRequest(
            inputs=inputs,
            outputs=outputs,
            samples=int(first.shape[0]) if first.ndim else 1,
            signature=signature_of(inputs),
            level=level,
            enqueued_at=now,
            future=self._loop.create_future(),
            request_id=REQUEST_ID.get(),
        )
        if timeout is not None:
            pending.timer = self._loop.call_later(timeout, self._expire, pending, timeout, client_timeout)
        self._levels[level - 1].append(pending)
        self._level_counts[level - 1] += 1
        self._queued += 1
        self._queued_samples += pending.samples
        self._metrics.queue_depth(self._queued)
        self._arrival.set()
        return pending

    def drop(self, pending: PendingRequest, error: ServingError, reason: str) -> None:
        """Take a request out before compute (client gone, timed out); a no-op once it is dispatched."""
        if pending.queued and not pending.future.done():
            self._unqueue(pending)
            self._metrics.dropped(reason)
            pending.future.set_exception(error)

    def abandon(self, pending: PendingRequest) -> None:
        """The waiting side was cancelled: free the request's place in the queue, compute nothing for it."""
        self._unqueue(pending)
        pending.future.cancel()

    def _reject(self, reason: str, message: str) -> None:
        self._metrics.dropped(reason)
        raise Overloaded(message, headers={"retry-after": RETRY_AFTER_S}, status=self._spec.overload_status)

    def _expire(self, pending: PendingRequest, timeout: float, client_timeout: bool) -> None:
        message = f"request waited {timeout * 1000:g} ms in the queue of {self.label} without being scheduled"
        if client_timeout:
            self.drop(pending, ClientTimeout(message), "client_timeout")
        else:
            self.drop(pending, QueueTimeout(message), "timeout")

    def _unqueue(self, pending: PendingRequest) -> None:
        if not pending.queued:
            return
        pending.queued = False
        if pending.timer is not None:
            pending.timer.cancel()
        self._level_counts[pending.level - 1] -= 1
        self._queued -= 1
        self._queued_samples -= pending.samples
        self._metrics.queue_depth(self._queued)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            if batch is None:
                self._slots.release()
                return
            job = self._prepare(batch)
            if job is None:
                self._slots.release()
                continue
            self._busy += 1
            if self._runs_inline(job):
                self._execute_inline(job)
                # The call held the loop: let everything else run before the next batch may take it again.
                await asyncio.sleep(0)
            else:
                task = asyncio.create_task(self._execute(job))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _next_batch(self) -> Batch | None:
        while True:
            head = next(self._live(), None)
            if head is None:
                if self._closing:
                    return None
                await self._wait_for_arrival(None)
                continue
            # The O(1) sample count says whether forming a batch can succeed before scanning the queue.
            if self._max_samples and self._queued_samples < self._ready_at and not self._closing:
                wait = self._worth_waiting(head)
                if wait > 0:
                    await self._wait_for_arrival(wait)
                    continue
            members, samples = collect(head, self._live(), self._max_samples)
            reason = dispatch_reason(samples, self._max_samples, self._preferred)
            if reason is None:
                wait = self._worth_waiting(head)
                if wait > 0 and not self._closing:
                    await self._wait_for_arrival(wait)
                    continue
                reason = "delay" if head.enqueued_at + self._delay <= self._loop.time() else "idle"
            elif reason == "preferred":
                members = trim(members, samples, self._preferred)
            for member in members:
                self._unqueue(member)
            return Batch(members, reason)

    def _worth_waiting(self, head: PendingRequest) -> float:
        """How long to wait for more requests before dispatching a partial batch; 0 or less: dispatch now.

        Never past the oldest request's ``max_queue_delay_ms``. With ``adaptive_delay`` also not when nothing else
        is queued or computing (a lone client gains nothing from waiting), nor once no request has arrived for a
        tenth of the delay (the clients that were coming have come).
        """
        now = self._loop.time()
        remaining = head.enqueued_at + self._delay - now
        if not self._spec.adaptive_delay or remaining <= 0:
            return remaining
        if self._queued == 1 and not self._busy:
            return 0.0
        return min(remaining, self._last_arrival + self._delay / 10 - now)

    async def _wait_for_arrival(self, timeout: float | None) -> None:
        self._arrival.clear()
        timer = None if timeout is None else self._loop.call_later(timeout, self._arrival.set)
        await self._arrival.wait()
        if timer is not None:
            timer.cancel()

    def _live(self) -> Iterator[PendingRequest]:
        """Queued requests, highest priority first, oldest first; drops finished ones from the fronts."""
        for level in self._levels:
            while level and not level[0].queued:
                level.popleft()
            for pending in level:
                if pending.queued:
                    yield pending

    def _prepare(self, batch: Batch) -> Job | None:
        members = [member for member in batch.members if not member.future.done()]
        if not members:
            return None
        samples = sum(member.samples for member in members)
        now = self._loop.time()
        self._metrics.dispatched(batch.reason, samples, [now - member.enqueued_at for member in members])
        outputs = tuple(dict.fromkeys(name for member in members for name in member.outputs))
        started = time.perf_counter()
        inputs = concatenate(members)
        return Job(members, samples, inputs, outputs, time.perf_counter() - started)

    def _runs_inline(self, job: Job) -> bool:
        """Whether the call is predicted shorter than handing it to a thread would cost."""
        return self._per_sample is not None and self._per_sample * job.samples < self._inline_below

    def _execute_inline(self, job: Job) -> None:
        try:
            outcome: Computed | Exception = self._pipeline.run(job.inputs, job.outputs)
        except Exception as exc:
            outcome = exc
        if isinstance(outcome, Exception) and len(job.members) > 1:
            # Finding the failing request takes several calls: on the variant's thread, not the event loop.
            task = asyncio.create_task(self._isolate(job, outcome))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            return
        self._release()
        self._answer([Part(job.members, job.samples, outcome, job.input_s)])

    async def _execute(self, job: Job) -> None:
        try:
            outcome = await self._call(job.inputs, job.outputs, job.members)
        except Stuck:
            return
        except asyncio.CancelledError:  # shutdown gave up on a model that would not finish
            self._release()
            fail(job.members, Unavailable(f"{self.label} shut down while this request was computing"))
            raise
        if isinstance(outcome, Exception) and len(job.members) > 1:
            await self._isolate(job, outcome)
            return
        self._release()
        self._answer([Part(job.members, job.samples, outcome, job.input_s)])

    async def _isolate(self, job: Job, failure: Exception) -> None:
        """The batch's call failed: split it in halves and retry each, down to the requests that fail on their
        own, so one bad request does not fail its companions. Each request takes part in at most log2(requests)
        extra calls, each under the model's ``compute_timeout_ms`` of its own. The instance stays taken meanwhile."""
        log.warning("%s failed on a batch of %d requests (%s); retrying it in halves to find the failing ones%s",
                    self.label, len(job.members), failure, request_ids(job.members))  # fmt: skip
        parts: list[Part] = []
        try:
            await self._bisect(job.members, job.outputs, parts)
        except Stuck:  # a retry ran past compute_timeout_ms: what it had not reached is answered the same
            self._answer(parts)
            answered = {id(member) for part in parts for member in part.members}
            fail([m for m in job.members if id(m) not in answered], self._compute_timeout_error())
            return
        except asyncio.CancelledError:
            self._release()
            self._answer(parts)
            fail(job.members, Unavailable(f"{self.label} shut down while this request was computing"))
            raise
        self._release()
        self._answer(parts)

    async def _bisect(self, members: list[PendingRequest], outputs: tuple[str, ...], parts: list[Part]) -> None:
        middle = len(members) // 2
        for group in (members[:middle], members[middle:]):
            started = time.perf_counter()
            inputs = concatenate(group)
            input_s = time.perf_counter() - started
            outcome = await self._call(inputs, outputs, group)
            if isinstance(outcome, Exception) and len(group) > 1:
                await self._bisect(group, outputs, parts)
            else:
                parts.append(Part(group, sum(member.samples for member in group), outcome, input_s))

    async def _call(
        self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...], members: list[PendingRequest]
    ) -> Computed | Exception:
        """One model call on the variant's thread: its outputs and seconds, or what it raised. Raises
        :class:`Stuck` when it runs past ``compute_timeout_ms`` (its members are failed 504, and the instance is
        freed only when the call returns)."""
        call = self._loop.run_in_executor(self._executor, self._pipeline.run, inputs, outputs)
        try:
            if self._compute_timeout:
                return await asyncio.wait_for(asyncio.shield(call), self._compute_timeout)
            return await call
        except TimeoutError:
            fail(members, self._compute_timeout_error())
            samples = sum(member.samples for member in members)
            log.error("%s: a call on %d samples ran past %g ms; its instance is busy until it returns%s", self.label,
                      samples, self._compute_timeout * 1000, request_ids(members))  # fmt: skip
            call.add_done_callback(lambda _: self._release())
            raise Stuck from None
        except Exception as exc:
            return exc

    def _compute_timeout_error(self) -> ComputeTimeout:
        limit = f"{self._compute_timeout * 1000:g} ms"
        return ComputeTimeout(f"{self.label} did not finish within compute_timeout_ms ({limit})")

    def _release(self) -> None:
        self._busy -= 1
        self._slots.release()

    def _answer(self, parts: list[Part]) -> None:
        """Answer every member of ``parts`` with its rows or its failure; the first failure's traceback is logged,
        the others in a line each."""
        traced = False
        for part in parts:
            if isinstance(part.outcome, ServingError):
                fail(part.members, part.outcome)
            elif isinstance(part.outcome, Exception):
                self._failed(part, part.outcome, traced=traced)
                traced = True
            else:
                self._finish(part, part.outcome)

    def _failed(self, part: Part, exc: Exception, traced: bool) -> None:
        members = request_ids(part.members)
        log.error("%s failed on a call of %d samples%s: %s", self.label, part.samples, members, exc,
                  exc_info=None if traced else exc)  # fmt: skip
        # The model's own message stays in the log: it names the runtime's source files, nothing a client can use.
        fail(part.members, ModelFailed(f"{self.label} failed on this request (the server's log has the error)"))

    def _finish(self, part: Part, computed: Computed) -> None:
        seconds = computed.compute_s + computed.before_s + computed.after_s
        per_sample = seconds / part.samples
        self._per_sample = per_sample if self._per_sample is None else 0.8 * self._per_sample + 0.2 * per_sample
        started = time.perf_counter()
        distribute(part.members, computed.outputs, part.samples, self.label)
        output_s = time.perf_counter() - started
        self._metrics.computed(part.samples, len(part.members), computed.compute_s, part.input_s, output_s)
        if computed.before_s or computed.after_s:  # a model with processing steps
            self._metrics.processed(computed.before_s, computed.after_s, computed.tokens_sent, computed.tokens_computed)

    async def close(self, timeout: float) -> None:
        """Stop taking requests, finish the queued and running ones within ``timeout``, fail what is left."""
        self._closing = True
        self._arrival.set()
        waiting = [task for task in (self._task, *self._inflight) if task is not None]
        if waiting:
            _, unfinished = await asyncio.wait(waiting, timeout=timeout)
            for task in unfinished:
                task.cancel()
        for pending in list(self._live()):
            self.drop(pending, Unavailable(f"{self.label} shut down before this request ran"), "shutdown")
        self._executor.shutdown(wait=False, cancel_futures=True)
