"""The device executor's parts: a decoder with random weights that runs on a real KV pool.

    settings.py        engine.device / engine.dtype / engine.backend -> torch objects; memory check
    weights.py         seeded random weights of a model's shape
    layers.py          RMSNorm, rotary embedding, MLP
    decoder.py         the forward pass over packed tokens, attention passed in
    kv_pool.py         the KV pool tensors and block copies
    step_inputs.py     one step's packed tokens, slots, block tables and lengths (host, then device)
    plan_inputs.py     StepInputs from a scheduler's StepPlan
    token_book.py      every sequence's token ids: prompt, sampled, forked, teacher-forced
    step_attention.py  a step's attention over the pool: store K/V, then prefill and decode kernels
    timing.py          step and kernel timers (CUDA events, or the wall clock on CPU)
    step_runner.py     runs a StepInputs: copies, forward, greedy sampling, timed
    engine.py          the executor's work: model, pool, one step per StepPlan, tokens, summary
    dense_reference.py the same decoder without a KV cache: the oracle of the tests
    profile_grid.py    synthetic steps of a given shape, and how they are timed
    profile_run.py     a grid of synthetic steps timed for `kvbench profile`

Nothing here is imported by the simulator: importing `kvbench.device` modules imports torch.
"""
