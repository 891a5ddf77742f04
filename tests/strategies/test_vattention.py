"""`vattention` maps physical pages as a request grows, in a contiguous virtual run per request."""

import pytest
import yaml

from kvbench.commands.listing import conf_dir
from kvbench.model_spec import ModelConfig, ModelSpec
from kvbench.strategies.invariants import check
from kvbench.strategies.vattention import VAttentionConfig, VAttentionStrategy

MiB = 1 << 20


def _model(name: str) -> ModelSpec:
    body = yaml.safe_load(conf_dir().joinpath("model", f"{name}.yaml").read_text())
    return ModelSpec(ModelConfig(**{k: v for k, v in body.items() if k in ModelConfig.__dataclass_fields__}))


@pytest.mark.parametrize(
    ("model", "tensor_parallel", "page_kib", "waste_mib"),
    # Prabhu et al., ASPLOS'25, Table 8: worst-case memory waste per request.
    [("yi-6b", 1, 64, 4), ("llama-3-8b", 1, 64, 4), ("yi-34b", 2, 64, 15),
     ("yi-6b", 1, 256, 16), ("llama-3-8b", 1, 256, 16), ("yi-34b", 2, 256, 60)],
)
def test_worst_case_waste_per_request_matches_the_paper(model, tensor_parallel, page_kib, waste_mib):
    spec = _model(model)
    config = VAttentionStrategy.configure(VAttentionConfig(page_bytes=page_kib * 1024), spec, tensor_parallel)
    st = VAttentionStrategy(config, num_blocks=64, max_model_len=spec.config.max_model_len)
    assert round(st.worst_case_waste_bytes() / MiB) == waste_mib
    # The same waste in the memory breakdown: a request holding one token of its last page.
    assert st.allocate(_Seq(0, config.block_size + 1), 0, config.block_size + 1) is not None
    internal_bytes = st.usage().internal_frag_slots * spec.kv_bytes_per_token
    assert internal_bytes == st.worst_case_waste_bytes()


class _Seq:
    def __init__(self, seq_id, final):
        self.seq_id, self.final_num_kv_tokens, self.stream = seq_id, final, None


def test_tokens_per_page_follow_the_model_and_tensor_parallelism():
    spec = _model("llama-3-8b")  # 8 KV heads x 128 x 2 bytes = 2 KiB of K per token per layer
    assert VAttentionStrategy.configure(VAttentionConfig(page_bytes=64 * 1024), spec, 1).block_size == 32
    assert VAttentionStrategy.configure(VAttentionConfig(page_bytes=64 * 1024), spec, 2).block_size == 64
    two_mib = VAttentionStrategy.configure(VAttentionConfig(page_bytes=2 * MiB), spec, 1)
    assert two_mib.block_size == 1024 and two_mib.pages_per_block == 64
    with pytest.raises(ValueError, match="page_bytes=1000"):
        VAttentionStrategy.configure(VAttentionConfig(page_bytes=1000), spec, 1)


def test_pages_are_mapped_on_demand_and_unmapped_at_finish(strategy_factory, seq_factory):
    st = strategy_factory("vattention", num_blocks=6, block_size=4)
    a, b = seq_factory(0, 5, final=9), seq_factory(1, 3, final=4)
    assert st.allocate(a, 0, 5) == 8 and st.block_table(0) == [0, 1]
    assert st.allocate(b, 0, 3) == 4 and st.block_table(1) == [2]
    assert st.allocate(a, 8, 1) == 4 and st.block_table(0) == [0, 1, 3]
    assert st.counters["pages_mapped"] == 4 * 2 and st.counters["bytes_mapped"] == 4 * 2 * 64 * 1024
    check(st)
    assert st.free(0, 9)
    assert st.counters["pages_unmapped"] == 3 * 2
    # Unmapped pages are reused last freed first: a's head page comes back first.
    assert st.allocate(seq_factory(2, 4, final=4), 0, 4) == 4 and st.block_table(2) == [4]
    assert st.allocate(seq_factory(3, 12, final=12), 0, 12) is not None and st.block_table(3) == [5, 0, 1]
    check(st)


def test_deferred_reclamation_hands_a_finished_run_to_the_next_request(strategy_factory, seq_factory):
    st = strategy_factory("vattention", num_blocks=4, block_size=4, deferred_reclamation=True)
    assert st.allocate(seq_factory(0, 8, final=8), 0, 8) is not None and st.free(0, 8)
    assert st.usage().cached_slots == 8 and st.counters["pages_unmapped"] == 0
    assert st.allocate(seq_factory(1, 3, final=6), 0, 3) is not None
    assert st.block_table(1) == [0] and st.counters["pages_reused"] == 2
    # Its run's second page stays mapped, idle: it grows into it without mapping.
    assert st.allocate(seq_factory(1, 3, final=6), 4, 1) is not None and st.block_table(1) == [0, 1]
    assert st.counters["pages_mapped"] == 2 * 2 and st.counters["pages_reused"] == 4
    check(st)
    # A second request takes the two pages never mapped, then must unmap... nothing idle is left.
    assert st.allocate(seq_factory(2, 8, final=8), 0, 8) is not None and st.block_table(2) == [2, 3]
    assert st.allocate(seq_factory(3, 1, final=1), 0, 1) is None
    check(st)


def test_deferred_pages_are_reclaimed_when_memory_runs_out(strategy_factory, seq_factory):
    st = strategy_factory("vattention", num_blocks=3, block_size=4, deferred_reclamation=True)
    assert st.allocate(seq_factory(0, 8, final=8), 0, 8) is not None and st.free(0, 8)  # pages 0, 1 idle
    assert st.allocate(seq_factory(1, 4, final=4), 0, 4) is not None and st.block_table(1) == [0]
    # seq 2 finds no idle run: the never-mapped page, then page 1 unmapped from seq 1's spare tail.
    assert st.allocate(seq_factory(2, 8, final=8), 0, 8) is not None and st.block_table(2) == [2, 1]
    assert st.counters["pages_unmapped"] == 2
    check(st)
