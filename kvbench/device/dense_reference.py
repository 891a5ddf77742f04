"""The oracle: the same decoder with no KV cache at all.

Each sequence's whole token list goes through the decoder at once with full causal attention
(torch's scaled_dot_product_attention over dense K/V, query heads repeated per GQA group; a
sliding-window layer masks keys older than its window): no
pool, no block table, no kernel of kvbench. A device run whose strategy, scheduler or kernels
changed what the model computes disagrees with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kvbench.device.decoder import Decoder
from kvbench.kernels.quant_reference import fake_quantize
from kvbench.kv_format import KVFormat
from kvbench.model_spec import sliding_windows


@torch.inference_mode()
def dense_logits(decoder: Decoder, token_ids: Sequence[int], kv_format: KVFormat | None = None) -> torch.Tensor:
    """Logits `[len(token_ids), vocab]`: row p predicts the token after position p.

    With a quantized `kv_format`, K and V go through its reference quantize/dequantize first, as the
    device executor stores them (each token on its own, so the dense model sees the same values)."""
    device = decoder.weights.embedding.device
    ids = torch.as_tensor(list(token_ids), dtype=torch.int64, device=device)
    positions = torch.arange(len(ids), device=device)
    scale = decoder.scale

    windows = sliding_windows(decoder.config)
    # Sliding-window layers: the causal mask with keys older than the window hidden too.
    window_masks = {w: (positions[None, :] <= positions[:, None]) & (positions[None, :] > positions[:, None] - w) for w in set(windows) if w}

    def causal_attention(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if kv_format is not None:
            k, v = fake_quantize(k, kv_format), fake_quantize(v, kv_format)
        group = q.shape[1] // k.shape[1]
        q_h, k_h, v_h = (t.transpose(0, 1) for t in (q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)))
        if windows[layer]:
            out = F.scaled_dot_product_attention(q_h, k_h, v_h, attn_mask=window_masks[windows[layer]], scale=scale)
        else:
            out = F.scaled_dot_product_attention(q_h, k_h, v_h, is_causal=True, scale=scale)
        return out.transpose(0, 1)

    return decoder.forward(ids, positions, causal_attention, positions)
