"""Time to first token, predicted per replica before a request is sent.

A replica serves its queue classes most urgent first, so what stands before a new request is
the prompt tokens not yet answered of its own class and the more urgent ones. How long those
take is learned from the replica's own answers: when a stream's first token arrives, its wait
and the tokens that stood before it (its own included) are one sample, under whatever load
the replica had. A line through recent samples (least squares, recent ones weighing most)
gives a fixed part, the steps any first token needs however short the queue, and a part per
waiting token; that folds prefill speed, decode steps interleaved with prefill and admission
waits together, with no model of the engine. Lines are kept per class: default work also waits
for priority work that arrives after it. Until a replica has answered once, nothing is
predicted (a class not yet seen borrows the nearest one's line).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenmill.protocol.tenancy import Priority

FORGETTING = 0.9  # each older sample weighs this much less than the next


@dataclass(slots=True)
class Waiting:
    """One request sent to a replica and not yet answered with a first token."""

    priority: Priority
    prompt_tokens: int
    sent_at: float
    ahead: int  # prompt tokens that stood before it when sent, its own included
    done: bool = False


@dataclass(slots=True)
class WaitLine:
    """Wait = fixed + per_token x tokens ahead, fitted to recency-weighted samples."""

    weight: float = 0.0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0

    def add(self, tokens: float, seconds: float) -> None:
        self.weight = self.weight * FORGETTING + 1
        self.sum_x = self.sum_x * FORGETTING + tokens
        self.sum_y = self.sum_y * FORGETTING + seconds
        self.sum_xx = self.sum_xx * FORGETTING + tokens * tokens
        self.sum_xy = self.sum_xy * FORGETTING + tokens * seconds

    def parts(self) -> tuple[float, float]:
        """(fixed seconds, seconds per token), both at least 0."""
        mean_x, mean_y = self.sum_x / self.weight, self.sum_y / self.weight
        spread = self.sum_xx / self.weight - mean_x * mean_x
        if spread <= (0.05 * mean_x) ** 2:  # samples too alike to tell the parts apart
            return 0.0, mean_y / mean_x
        per_token = max((self.sum_xy / self.weight - mean_x * mean_y) / spread, 0.0)
        fixed = mean_y - per_token * mean_x
        if fixed < 0:  # the line through the origin instead
            return 0.0, self.sum_xy / self.sum_xx
        return fixed, per_token

    def seconds(self, tokens: float) -> float:
        fixed, per_token = self.parts()
        return fixed + per_token * tokens


@dataclass(slots=True)
class TtftPredictor:
    queued: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    lines: dict[Priority, WaitLine] = field(default_factory=dict)
    samples: int = 0

    def ahead_of(self, priority: Priority) -> int:
        return sum(tokens for cls, tokens in self.queued.items() if cls <= priority)

    def line(self, priority: Priority) -> WaitLine | None:
        if priority in self.lines:
            return self.lines[priority]
        nearest = sorted(self.lines, key=lambda cls: abs(cls - priority))
        return self.lines[nearest[0]] if nearest else None

    def predict(self, priority: Priority, prompt_tokens: int) -> float | None:
        """Seconds until the first token of a request sent now; None before any sample."""
        line = self.line(priority)
        if line is None:
            return None
        return line.seconds(self.ahead_of(priority) + max(prompt_tokens, 1))

    def sent(self, priority: Priority, prompt_tokens: int, now: float) -> Waiting:
        tokens = max(prompt_tokens, 1)
        ahead = self.ahead_of(priority) + tokens
        self.queued[priority] += tokens
        return Waiting(priority, tokens, now, ahead)

    def first_token(self, waiting: Waiting, now: float) -> None:
        """The request's first token arrived: it leaves the queue and teaches the rate."""
        if waiting.done:
            return
        self.ended(waiting)
        line = self.lines.setdefault(waiting.priority, WaitLine())
        line.add(waiting.ahead, max(now - waiting.sent_at, 0.0))
        self.samples += 1

    def ended(self, waiting: Waiting) -> None:
        """The request left without a first token seen (answered whole, failed, cancelled)."""
        if not waiting.done:
            waiting.done = True
            self.queued[waiting.priority] -= waiting.prompt_tokens
