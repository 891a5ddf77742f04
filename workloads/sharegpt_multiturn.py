"""`sharegpt_multiturn`: ShareGPT conversations replayed as chat sessions, the workload where prefix
caching matters.

A session is one conversation. Its turn k is a user message that the bot answers: the prompt is
every earlier message of the conversation (user and bot, in order) plus that user message, and the
output is the recorded reply, set as `Request.output`, so the scheduler "generates" exactly the
reply's tokens and the next turn's prompt, which quotes it, finds it cached. Every message is one
synthetic segment keyed like `sharegpt`'s (`message_key`), so equal messages give equal tokens at
any block size. Lengths are token counts without a chat template.

Timing is open-loop, decided before the run: sessions start by `workload.arrival` at
`workload.rate` sessions per second (Poisson by default), and turn k + 1 arrives
`reply_s_per_token x (turn k's reply tokens) + think time` after turn k arrived, the first term an
estimate of how long the reply takes to stream to the user. A closed-loop client would wait for
the simulated reply, but kvbench's scheduler serves a fixed arrival list, the same one for every
strategy so that arrivals stay the controlled variable. When a strategy's simulated server is slower than
the estimate, the next turn arrives while the reply is still being generated: it then finds only
the part of the conversation computed so far in the cache, and its latency shows the overload.

Conversations are shuffled with the seed and taken in that order, keeping those with at least one
answered user message, until `num_sessions` are found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvbench.tokens import Synthetic, TokenSequence
from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig
from kvbench.workloads.request_table import RequestTable, MadeWhenRead
from kvbench.workloads.sharegpt import load_conversations, message_key
from kvbench.workloads.sharegpt_table import Conversation
from kvbench.workloads.think_time import ThinkTimeConfig, sample_think_times_s


@dataclass
class ShareGPTMultiturnConfig(WorkloadConfig):
    name: str = "sharegpt_multiturn"
    path: str | None = None  # a ShareGPT-format JSON of your own; None: the shipped table
    num_sessions: int | None = 200  # conversations to replay (None: every one with an answered user message)
    num_requests: int | None = None  # then at most this many turns, the first in arrival order
    rate: float = 0.5  # sessions started per second
    max_turns: int | None = None  # at most this many turns per session (None: the whole conversation)
    think_time: ThinkTimeConfig = field(default_factory=ThinkTimeConfig)
    reply_s_per_token: float = 0.02  # estimated streaming time of a reply, per token (open loop)


def chat_turns(conversation: Conversation) -> list[int]:
    """Indices of the user messages that the next message answers with at least one token."""
    roles, num_tokens = conversation.roles, conversation.num_tokens
    return [i for i in range(len(roles) - 1) if roles[i] == "h" and roles[i + 1] == "g" and num_tokens[i + 1] > 0
            and sum(num_tokens[: i + 1]) > 0]


@WORKLOADS.register("sharegpt_multiturn", ShareGPTMultiturnConfig)
class ShareGPTMultiturnWorkload(Workload):
    config: ShareGPTMultiturnConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        if c.num_sessions is not None and c.num_sessions < 1:
            raise ValueError(f"workload.num_sessions={c.num_sessions} must be >= 1 (or null for all)")
        if c.max_turns is not None and c.max_turns < 1:
            raise ValueError(f"workload.max_turns={c.max_turns} must be >= 1 (or null)")
        if c.reply_s_per_token < 0:
            raise ValueError(f"workload.reply_s_per_token={c.reply_s_per_token} must be >= 0")
        conversations, dataset = load_conversations(c.path)
        sessions: list[tuple[Conversation, list[int]]] = []
        for index in rng.permutation(len(conversations)):
            turns = chat_turns(conversations[index])[: c.max_turns]
            if turns:
                sessions.append((conversations[index], turns))
                if len(sessions) == c.num_sessions:
                    break
        if c.num_sessions is not None and len(sessions) < c.num_sessions:
            raise ValueError(f"workload.num_sessions={c.num_sessions} but only {len(sessions)} conversations "
                             "have an answered user message")

        rows = [(s, i) for s, (_, turns) in enumerate(sessions) for i in turns]
        session_ids = np.asarray([s for s, _ in rows], dtype=np.int64)
        turns = np.concatenate([np.arange(len(t)) for _, t in sessions])
        prompt_lens = np.asarray([sum(sessions[s][0].num_tokens[: i + 1]) for s, i in rows], dtype=np.int64)
        output_lens = np.asarray([sessions[s][0].num_tokens[i + 1] for s, i in rows], dtype=np.int64)
        # Turn k + 1 arrives after turn k's estimated reply and a pause; first turns at their session's start.
        think_s = sample_think_times_s(c.think_time, len(rows), rng, "workload.think_time")
        gaps_s = output_lens * c.reply_s_per_token + think_s
        offsets_s = np.zeros(len(rows))
        later = turns > 0
        offsets_s[later] = gaps_s[np.flatnonzero(later) - 1]
        offsets_s = _cumsum_per_session(offsets_s, turns)

        def prompt(row: int) -> TokenSequence:
            s, user = rows[row]
            conv = sessions[s][0]
            return TokenSequence(Synthetic(message_key(conv, j), conv.num_tokens[j]) for j in range(user + 1))

        def output(row: int) -> TokenSequence:
            s, user = rows[row]
            conv = sessions[s][0]
            return TokenSequence.synthetic(message_key(conv, user + 1), conv.num_tokens[user + 1])

        return RequestTable(
            num_prompt_tokens=prompt_lens,
            num_output_tokens=output_lens,
            prompt=MadeWhenRead(prompt, prompt_lens),
            output=MadeWhenRead(output, output_lens),
            session_ids=session_ids,
            turns=turns.astype(np.int64),
            session_offsets_s=offsets_s,
            source="sharegpt_multiturn",
            dataset={**dataset, "sessions": len(sessions)},
        )


def _cumsum_per_session(gaps_s: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Running sums of `gaps_s` that restart at every first turn (rows grouped by session, in turn order)."""
    total = np.cumsum(gaps_s)
    session_start = np.maximum.accumulate(np.where(turns == 0, np.arange(len(turns)), 0))
    return total - total[session_start]
