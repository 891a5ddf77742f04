"""Replay a case through vLLM's own scheduler and KV-cache manager (the installed wheel, on CPU).

Nothing here re-implements vLLM: `vllm.v1.core.sched.scheduler.Scheduler` plans every step with
its real `KVCacheManager` and `BlockPool`; this module only plays the model runner (it returns
each request's next recorded output token when its prompt is done) and reads the state back.
The model config is a two-layer OPT shape written to a temporary folder, since vLLM reads a
`config.json` to build its `ModelConfig`; no weights are loaded and nothing is downloaded.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from functools import cache

from kvbench.oracle.cases import STEP_S, Case
from kvbench.oracle.state import StepState

VLLM_VERSION = "0.33.0"  # the release the rules were checked against
_TINY_OPT = {
    "architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 64, "num_attention_heads": 4,
    "num_hidden_layers": 2, "ffn_dim": 256, "vocab_size": 50272, "max_position_embeddings": 4096,
    "word_embed_proj_dim": 64, "torch_dtype": "float16", "do_layer_norm_before": True,
}


def vllm_available() -> str | None:
    """The installed vLLM's version, or None when it cannot be imported."""
    try:
        import vllm
        from vllm.v1.core.sched.scheduler import Scheduler  # noqa: F401
    except Exception:  # an absent or broken install: the oracle is optional
        return None
    return vllm.__version__


@cache
def _model_dir() -> str:
    path = tempfile.mkdtemp(prefix="kvbench-vllm-oracle-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(_TINY_OPT, f)
    return path


def _scheduler(case: Case, windows: tuple[int, ...] = (), prefix_caching: bool = True):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from vllm.config import CacheConfig, DeviceConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec, SlidingWindowSpec
    from vllm.v1.structured_output import StructuredOutputManager

    vllm_config = VllmConfig(
        scheduler_config=SchedulerConfig(
            max_num_seqs=case.max_num_seqs, max_num_batched_tokens=case.max_num_batched_tokens,
            max_model_len=case.max_model_len, enable_chunked_prefill=True, is_encoder_decoder=False,
        ),
        model_config=ModelConfig(
            model=_model_dir(), skip_tokenizer_init=True, dtype="float16", max_model_len=case.max_model_len,
        ),
        cache_config=CacheConfig(block_size=case.block_size, enable_prefix_caching=prefix_caching),
        device_config=DeviceConfig(device="cpu"),
    )
    num_blocks = case.num_blocks + 1  # vLLM reserves block 0 as its null block
    vllm_config.cache_config.num_gpu_blocks = num_blocks
    groups = []
    for g, window in enumerate(windows or (0,)):  # groups of one page size: one layer each
        shape = {"block_size": case.block_size, "num_kv_heads": 1, "head_size": 1, "dtype": torch.float32}
        spec = SlidingWindowSpec(**shape, sliding_window=window) if window else FullAttentionSpec(**shape)
        groups.append(KVCacheGroupSpec([f"layer{g}"], spec))
    kv_cache_config = KVCacheConfig(num_blocks=num_blocks, kv_cache_tensors=[], kv_cache_groups=groups)
    return Scheduler(
        vllm_config=vllm_config, kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(vllm_config), block_size=case.block_size,
    )


def replay(
    case: Case, max_steps: int = 100_000, windows: tuple[int, ...] = (), prefix_caching: bool = True,
    observe: bool = True,
) -> Iterator[StepState | None]:
    """Every step vLLM plans for `case`, until all requests finish (or nothing can be scheduled).

    `windows`: the model's layer groups, each group's sliding window (0: full attention); empty,
    one full-attention group. With groups, every step also reports each group's tables.
    `observe=False` yields None instead of reading the state back (timing vLLM's own work alone)."""
    from vllm.sampling_params import SamplingParams
    from vllm.utils.hashing import sha256
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import Request, RequestStatus

    scheduler = _scheduler(case, windows, prefix_caching)
    init_none_hash(sha256)
    hasher = get_request_block_hasher(case.block_size, sha256)
    outputs = {str(r.request_id): r.output.ids(0, r.num_output_tokens, 1 << 62).tolist() for r in case.requests}
    pending = deque(sorted(case.requests, key=lambda r: (r.arrival_time_s, r.request_id)))
    live: dict[str, Request] = {}
    clock_s = 0.0
    for _ in range(max_steps):
        while pending and pending[0].arrival_time_s <= clock_s:
            r = pending.popleft()
            request = Request(
                request_id=str(r.request_id), prompt_token_ids=r.prompt.ids(0, r.num_prompt_tokens, 1 << 62).tolist(),
                sampling_params=SamplingParams(max_tokens=r.num_output_tokens, ignore_eos=True),
                pooling_params=None, block_hasher=hasher,
            )
            live[request.request_id] = request
            scheduler.add_request(request)
        if not scheduler.running and not scheduler.waiting:
            if not pending:
                return
            clock_s = pending[0].arrival_time_s
            continue
        if observe:
            was_waiting = {rid for rid, req in live.items() if req.status != RequestStatus.RUNNING}
            was_running = [req.request_id for req in scheduler.running]
        out = scheduler.schedule()
        yield _observe(scheduler, out, live, was_waiting, was_running, with_groups=bool(windows)) if observe else None
        if out.total_num_scheduled_tokens == 0:
            return  # stuck: the caller sees the empty step
        req_ids = list(out.num_scheduled_tokens)
        sampled = []
        for rid in req_ids:
            req = live[rid]
            done = req.num_computed_tokens >= req.num_tokens
            sampled.append([outputs[rid][len(req.output_token_ids)]] if done else [])
        runner_output = ModelRunnerOutput(
            req_ids=req_ids, req_id_to_index={rid: i for i, rid in enumerate(req_ids)}, sampled_token_ids=sampled,
        )
        scheduler.update_from_output(out, runner_output)
        for rid in req_ids:  # only a request scheduled in this step can have finished in it
            if live[rid].is_finished():
                del live[rid]
        clock_s += STEP_S
    raise RuntimeError(f"{case.name}: vLLM did not finish within {max_steps} steps")


def _observe(scheduler, out, live, was_waiting: set[str], was_running: list[str], with_groups: bool = False) -> StepState:
    manager = scheduler.kv_cache_manager
    running_now = {req.request_id for req in scheduler.running}
    admitted = [rid for rid in was_waiting if rid in running_now]
    hits = sum(live[rid].num_computed_tokens - out.num_scheduled_tokens[rid] for rid in admitted)
    preempted = tuple(int(rid) for rid in was_running if rid not in running_now and not live[rid].is_finished())
    tables = tuple(
        (int(req.request_id), tuple(b - 1 for b in manager.get_block_ids(req.request_id)[0]))
        for req in scheduler.running
    )
    group_tables = tuple(
        (int(req.request_id), tuple(tuple(b - 1 for b in ids) for ids in manager.get_block_ids(req.request_id)))
        for req in scheduler.running
    ) if with_groups else ()
    return StepState(
        group_block_tables=tuple(sorted(group_tables)),
        num_prefix_hit_tokens=hits,
        preempted=tuple(sorted(preempted)),
        scheduled_tokens=tuple(sorted((int(rid), n) for rid, n in out.num_scheduled_tokens.items())),
        running=tuple(int(req.request_id) for req in scheduler.running),
        waiting=tuple(int(req.request_id) for req in scheduler.waiting),
        num_free_blocks=manager.block_pool.get_num_free_blocks(),
        block_tables=tuple(sorted(tables)),
    )
