"""Every sequence's token ids on the device executor: the prompt, then what it sampled.

The scheduler knows how many tokens a sequence has, never which: the book keeps the ids.

- A sequence seen for the first time without a parent starts with its prompt ids (`ids` of the
  request's prompt segments). A single-sequence request preempted by recompute keeps its seq_id,
  so its recompute prefill reads prompt + its generated tokens back from here.
- A forked sequence (parallel samples after the prefill; beams at every step) starts with its
  parent's ids up to the fork: the scheduler forks after the parent sampled, so the child's first
  step decodes the same last token as its parent.
- Greedy decoding: the next token is the argmax of the logits, except that a request's root
  sequence whose request carries a recorded `output` is fed those ids (teacher forcing), so that
  a later turn quoting that output finds the same tokens' K/V in the prefix cache.
- When a request finishes, its sequences' generated ids become its `generated_token_ids` column
  (space-separated ids, sequences separated by `|`) and its entry in `tokens_sha256`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from kvbench.sequence import RequestState, Sequence


@dataclass
class SeqRecord:
    """A finished request's sequence, kept when the engine records logits (tests)."""

    seq_id: int
    token_ids: list[int]  # prompt + generated
    logits: dict[int, np.ndarray] = field(default_factory=dict)  # position -> logits predicting position + 1


class TokenBook:
    def __init__(self, vocab_size: int, record_logits: bool = False):
        self.vocab_size = vocab_size
        self.record_logits = record_logits
        self._histories: dict[int, list[int]] = {}  # seq_id -> token ids
        self._seq_ids: dict[int, list[int]] = {}  # request_id -> every seq_id it used
        self._logits: dict[int, dict[int, np.ndarray]] = {}  # seq_id -> position -> logits row
        self._generated: dict[int, str] = {}  # request_id -> generated_token_ids
        self.finished: dict[int, list[SeqRecord]] = {}  # request_id -> its sequences (recording only)

    def _history(self, seq: Sequence, num_tokens: int) -> list[int]:
        """The sequence's ids, created on first sight holding at least `num_tokens`."""
        history = self._histories.get(seq.seq_id)
        if history is not None:
            return history
        request = seq.group.request
        if seq.parent_seq_id is None:
            history = request.prompt.ids(0, request.num_prompt_tokens, self.vocab_size).tolist()
        else:
            parent = self._histories.get(seq.parent_seq_id)
            if parent is None or len(parent) < num_tokens:
                raise RuntimeError(
                    f"seq {seq.seq_id} of request {request.request_id} forked from seq {seq.parent_seq_id}, "
                    "whose tokens the executor never saw"
                )
            history = parent[:num_tokens]
        self._histories[seq.seq_id] = history
        self._seq_ids.setdefault(request.request_id, []).append(seq.seq_id)
        return history

    def prefill_ids(self, seq: Sequence, start: int, end: int) -> np.ndarray:
        history = self._history(seq, end)
        target = seq.group.num_prefill_target_tokens
        if len(history) == target + 1:
            # The prefill sampled, but the scheduler preempted the request in the same step before
            # counting that token (forks of an earlier request took its memory): it recomputes
            # without it, and samples it again.
            del history[target:]
        if len(history) < end:
            raise RuntimeError(f"seq {seq.seq_id} prefills up to position {end} but has {len(history)} tokens")
        return np.asarray(history[start:end], dtype=np.int64)

    def decode_id(self, seq: Sequence, position: int) -> int:
        history = self._history(seq, position + 1)
        if len(history) != position + 1:
            raise RuntimeError(f"seq {seq.seq_id} decodes position {position} but has {len(history)} tokens")
        return history[position]

    def sampled(self, seq: Sequence, position: int, argmax_id: int, logits: np.ndarray | None) -> None:
        """The token at `position` produced `logits` and `argmax_id`: append the next token."""
        history = self._histories[seq.seq_id]
        if len(history) != position + 1:
            raise RuntimeError(f"seq {seq.seq_id} sampled after position {position} but has {len(history)} tokens")
        request = seq.group.request
        if request.output is not None and seq.parent_seq_id is None:
            offset = position + 1 - request.num_prompt_tokens
            argmax_id = int(request.output.ids(offset, offset + 1, self.vocab_size)[0])
        history.append(argmax_id)
        if logits is not None:
            self._logits.setdefault(seq.seq_id, {})[position] = logits

    def finish(self, group: RequestState) -> str:
        """The request's generated ids as text; forget its sequences."""
        request = group.request
        num_prompt = request.num_prompt_tokens
        generated = []
        for seq in group.seqs:
            ids = self._histories[seq.seq_id][num_prompt:]
            if len(ids) != request.num_output_tokens:
                raise RuntimeError(
                    f"request {request.request_id} finished with {len(ids)} generated tokens in seq {seq.seq_id}, "
                    f"expected {request.num_output_tokens}"
                )
            generated.append(" ".join(map(str, ids)))
        text = "|".join(generated)
        self._generated[request.request_id] = text
        seq_ids = self._seq_ids.pop(request.request_id)
        if self.record_logits:
            self.finished[request.request_id] = [
                SeqRecord(sid, self._histories[sid], self._logits.get(sid, {})) for sid in seq_ids
            ]
        for sid in seq_ids:
            del self._histories[sid]
            self._logits.pop(sid, None)
        return text

    def tokens_sha256(self) -> str:
        """sha256 of `"<request_id> <generated_token_ids>\\n"` over finished requests in id order."""
        digest = hashlib.sha256()
        for request_id in sorted(self._generated):
            digest.update(f"{request_id} {self._generated[request_id]}\n".encode())
        return digest.hexdigest()
