"""The rules a batch is formed by, given the queue's live requests (oldest and highest priority first)."""

from collections.abc import Iterable

from app.batching.pending import PendingRequest


def collect(head: PendingRequest, live: Iterable[PendingRequest], max_samples: int) -> tuple[list[PendingRequest], int]:
    """Requests that can share a call with ``head``, in order, until the next one would overflow it
    (``max_samples`` 0: batching off, ``head`` alone)."""
    if not max_samples:
        return [head], head.samples
    members: list[PendingRequest] = []
    samples = 0
    for pending in live:
        if pending.signature != head.signature:
            continue
        if members and samples + pending.samples > max_samples:
            break
        members.append(pending)
        samples += pending.samples
        if samples == max_samples:
            break
    return members, samples


def dispatch_reason(samples: int, max_samples: int, preferred: list[int]) -> str | None:
    """Why a batch of ``samples`` goes now (``preferred`` sizes largest first), or None: it may wait for more."""
    if not max_samples or samples >= max_samples:
        return "full"
    if preferred and samples >= preferred[-1]:
        return "preferred"
    return None


def trim(members: list[PendingRequest], samples: int, preferred: list[int]) -> list[PendingRequest]:
    """The longest prefix of ``members`` that stays within the largest preferred size reachable.

    Never empty: a head request bigger than that size (17 samples with preferred sizes 16, 32) goes alone,
    since a request is never split. An empty batch would leave the queue as it was, and the dispatch loop
    would form it again without ever awaiting: the whole event loop would stop.
    """
    target = next(size for size in preferred if size <= samples)
    kept, total = [members[0]], members[0].samples
    for member in members[1:]:
        if total + member.samples > target:
            break
        kept.append(member)
        total += member.samples
    return kept
