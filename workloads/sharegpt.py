"""`sharegpt`: single-turn requests from real ShareGPT conversations, sampled as vLLM's benchmark does.

Each conversation gives at most one request: its first user message is the prompt and the reply
right after it gives the output length. (vLLM's benchmark takes messages 0 and 1 whatever their
roles; a third of ShareGPT V3 conversations open with the bot, so kvbench looks for the first
user-then-bot pair instead.) Conversations are shuffled with the seed and taken in that order,
skipping pairs outside the length filters (vLLM's defaults), until `num_requests` are found. When
fewer pass, the missing requests are drawn again from those that do, at random with replacement
(as vLLM's benchmark oversamples), so a run can replay a million requests; a turn drawn twice has
the same tokens.

Lengths come from the table shipped with kvbench (cl100k_base token counts of ShareGPT V3, see
workloads/data/README.md), or from a user's own ShareGPT JSON given as `workload.path`, which is
tokenised on load (needs `pip install 'kvbench[derive]'`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvbench.workloads.base import WORKLOADS, Workload, WorkloadConfig
from kvbench.workloads.chunked_column import ChunkedColumn, drawn_column
from kvbench.workloads.request_table import RequestTable, SyntheticWhenRead
from kvbench.workloads.sharegpt_json import iter_sharegpt_json, tokenize_conversations
from kvbench.workloads.sharegpt_table import Conversation, load_length_table, read_table_metadata


@dataclass
class ShareGPTConfig(WorkloadConfig):
    name: str = "sharegpt"
    path: str | None = None  # a ShareGPT-format JSON of your own; None: the shipped table
    min_prompt_tokens: int = 4
    min_output_tokens: int = 4
    max_prompt_tokens: int = 1024
    max_total_tokens: int = 2048


def message_key(conversation: Conversation, index: int) -> tuple:
    """The synthetic-stream key of one message: a later turn quoting it gets the same tokens."""
    return ("sharegpt", conversation.conversation_id, index)


def load_conversations(path: str | None) -> tuple[list[Conversation], dict]:
    """Conversations and the dataset record for the manifest."""
    if path is None:
        meta = read_table_metadata()
        dataset = {
            "name": "sharegpt_v3",
            "source": f"{meta['source']['package']}=={meta['source']['package_version']}",
            "tokenizer": f"{meta['tokenizer']['package']}=={meta['tokenizer']['package_version']} "
            f"{meta['tokenizer']['encoding']}",
            "sha256": meta["table_sha256"],
        }
        return load_length_table(), dataset
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"workload.path={path}: no such file")
    sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
    dataset = {
        "name": "sharegpt_user_file", "source": str(file.resolve()), "tokenizer": "cl100k_base", "sha256": sha256,
    }
    return tokenize_conversations(iter_sharegpt_json(file)), dataset


def first_turn(conversation: Conversation) -> tuple[int, int] | None:
    """Indices of the first user message that the bot answers, and of the answer."""
    roles = conversation.roles
    for i in range(len(roles) - 1):
        if roles[i] == "h" and roles[i + 1] == "g":
            return i, i + 1
    return None


@WORKLOADS.register("sharegpt", ShareGPTConfig)
class ShareGPTWorkload(Workload):
    config: ShareGPTConfig

    def read(self, rng: np.random.Generator) -> RequestTable:
        c = self.config
        if not 1 <= c.min_prompt_tokens <= c.max_prompt_tokens or c.min_output_tokens < 1:
            raise ValueError(
                "workload length filters need 1 <= min_prompt_tokens <= max_prompt_tokens, min_output_tokens >= 1"
            )
        conversations, dataset = load_conversations(c.path)
        picked = self.passing_turns(conversations, rng, c.num_requests)
        num_picked = num_rows = len(picked)
        extra = None
        if c.num_requests is not None and num_picked < c.num_requests:
            if not num_picked:
                raise ValueError(
                    f"no ShareGPT conversation passes the length filters (min_prompt_tokens={c.min_prompt_tokens}, "
                    f"max_prompt_tokens={c.max_prompt_tokens}, min_output_tokens={c.min_output_tokens}, "
                    f"max_total_tokens={c.max_total_tokens})"
                )
            # More requests than turns pass: the rest are drawn again, with replacement, as vLLM's
            # benchmark oversamples a dataset that is too small. Row num_picked + i repeats turn
            # extra[i]; the draw is kept in chunks (workloads/chunked_column.py): a million hold one.
            num_rows = c.num_requests
            extra = drawn_column(rng, num_rows - num_picked, lambda rng, num: rng.integers(0, num_picked, num))
        # Three int32 columns, one row per picked turn.
        conversation_rows, prompt_messages, output_messages = picked.T

        def message_of(messages: np.ndarray) -> Callable[[int], tuple]:
            """Row -> the synthetic-stream key of the message `messages` picks in its turn."""

            def message(row: int) -> tuple:
                turn = row if row < num_picked else extra.item(row - num_picked)  # the picked turn it replays
                return message_key(conversations[conversation_rows.item(turn)], messages.item(turn))

            return message

        def num_tokens(messages: np.ndarray) -> np.ndarray:
            """Per picked turn, the length of the message `messages` picks in it."""
            lengths = [conversations[i].num_tokens[m] for i, m in zip(conversation_rows.tolist(), messages.tolist())]
            return np.asarray(lengths, dtype=np.int64)

        prompt_lens, output_lens = num_tokens(prompt_messages), num_tokens(output_messages)
        if extra is not None:
            turns = ChunkedColumn(num_rows, lambda start, stop: np.concatenate([
                np.arange(start, min(stop, num_picked)),
                extra.values(max(start, num_picked) - num_picked, max(stop, num_picked) - num_picked),
            ]))
            prompt_lens, output_lens = turns.map(prompt_lens.take), turns.map(output_lens.take)
        return RequestTable(
            num_prompt_tokens=prompt_lens,
            num_output_tokens=output_lens,
            prompt=SyntheticWhenRead(message_of(prompt_messages), prompt_lens),
            output=SyntheticWhenRead(message_of(output_messages), output_lens),
            source="sharegpt",
            dataset=dataset,
        )

    def passing_turns(
        self, conversations: list[Conversation], rng: np.random.Generator, limit: int | None
    ) -> np.ndarray:
        """(conversation index, prompt message, output message) of the first turns that pass the length
        filters, conversations in the seed's shuffled order; at most `limit` of them."""
        c = self.config
        picked: list[tuple[int, int, int]] = []
        for index in rng.permutation(len(conversations)):
            conversation = conversations[index]
            turn = first_turn(conversation)
            if turn is None:
                continue
            prompt_len, output_len = conversation.num_tokens[turn[0]], conversation.num_tokens[turn[1]]
            if not c.min_prompt_tokens <= prompt_len <= c.max_prompt_tokens or output_len < c.min_output_tokens:
                continue
            if prompt_len + output_len > c.max_total_tokens:
                continue
            picked.append((int(index), *turn))
            if len(picked) == limit:
                break
        return np.asarray(picked, dtype=np.int32).reshape(-1, 3)
