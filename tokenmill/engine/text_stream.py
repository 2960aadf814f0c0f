"""Token pieces in, showable text out: whole UTF-8 characters, stop strings cut off.

A token may end in the middle of a multi-byte character, and generated text may end in what
could become a stop string; both are held back until the next piece decides them.
"""

from __future__ import annotations

import codecs


class TextStream:
    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._pending = ""
        self.stopped = False

    def push(self, piece: bytes) -> str:
        """Add a token's bytes; return the text that can be shown now."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(piece)
        return self._release(final=False)

    def finish(self) -> str:
        """End of generation: return whatever was held back (less any stop string)."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        cut = self._earliest_stop()
        if cut is not None:
            text, self._pending, self.stopped = self._pending[:cut], "", True
            return text
        keep = 0 if final else self._held_suffix_chars()
        split = len(self._pending) - keep
        text, self._pending = self._pending[:split], self._pending[split:]
        return text

    def _earliest_stop(self) -> int | None:
        found = [i for i in (self._pending.find(s) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _held_suffix_chars(self) -> int:
        """Length of the longest tail of the pending text that begins some stop string."""
        longest = 0
        for stop in self._stop:
            for length in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:length]):
                    longest = length
                    break
        return longest
