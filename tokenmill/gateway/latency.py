"""Time to first token, predicted per replica before a request is sent.

A replica serves its queue classes most urgent first, so what stands before a new request is
the prompt tokens not yet answered of its own class and the more urgent ones. The cost of one
such token is learned from the replica's own answers: when a stream's first token arrives,
its wait divided by the tokens that stood before it (its own included) is one sample of
seconds per queued token, under whatever load the replica had. That folds prefill speed,
decode steps interleaved with prefill, and admission waits into one figure, with no model of
the engine. The figure is kept per class: default work also waits for priority work that
arrives after it, so its tokens cost more than priority's. Until a replica has answered once,
nothing is predicted (a class not yet seen borrows the nearest one's figure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenmill.protocol.tenancy import Priority

SMOOTHING = 0.2  # weight of the newest sample in the moving average


@dataclass(slots=True)
class Waiting:
    """One request sent to a replica and not yet answered with a first token."""

    priority: Priority
    prompt_tokens: int
    sent_at: float
    ahead: int  # prompt tokens that stood before it when sent, its own included
    done: bool = False


@dataclass(slots=True)
class TtftPredictor:
    queued: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    rates: dict[Priority, float] = field(default_factory=dict)  # seconds per queued token
    samples: int = 0

    def ahead_of(self, priority: Priority) -> int:
        return sum(tokens for cls, tokens in self.queued.items() if cls <= priority)

    def seconds_per_token(self, priority: Priority) -> float | None:
        if priority in self.rates:
            return self.rates[priority]
        nearest = sorted(self.rates, key=lambda cls: abs(cls - priority))
        return self.rates[nearest[0]] if nearest else None

    def predict(self, priority: Priority, prompt_tokens: int) -> float | None:
        """Seconds until the first token of a request sent now; None before any sample."""
        rate = self.seconds_per_token(priority)
        if rate is None:
            return None
        return (self.ahead_of(priority) + prompt_tokens) * rate

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
        sample = max(now - waiting.sent_at, 0.0) / waiting.ahead
        previous = self.rates.get(waiting.priority)
        self.rates[waiting.priority] = (
            sample if previous is None else previous + SMOOTHING * (sample - previous)
        )
        self.samples += 1

    def ended(self, waiting: Waiting) -> None:
        """The request left without a first token seen (answered whole, failed, cancelled)."""
        if not waiting.done:
            waiting.done = True
            self.queued[waiting.priority] -= waiting.prompt_tokens
