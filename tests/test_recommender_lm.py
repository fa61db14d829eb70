"""The UniCRS-faithful backbone on a tiny random Llama (vocab 99, hidden 32, 2 layers): the prefix enters through
`past_key_values` without disturbing how the dialogue itself is read, and gradients reach the prompt."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from ecrs.models.prefix_lm import PrefixLM  # noqa: E402
from ecrs.models.recommender import RecBatch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.requires_grad_(False)
    return model


def batch(ids: torch.Tensor, mask: torch.Tensor) -> RecBatch:
    b = ids.shape[0]
    z = torch.zeros(b, 1)
    return RecBatch(turn_vectors=z, turn_role=z.long(), turn_mask=z.bool(), entities=z.long(),
                    entity_mask=z.bool(), emo_labels=z.long(), emo_probs=z, input_ids=ids, attention_mask=mask)


def test_masked_prefix_reads_the_dialogue_as_without_one(lm):
    backbone = PrefixLM(lm, d=8, prefix_hidden=16, dropout=0.0)
    ids = torch.tensor([[0, 0, 5, 6, 7], [3, 4, 5, 6, 7]])  # row 0 left-padded with 2 pads
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    prompt = torch.randn(2, 3, 8)
    got = backbone(batch(ids, mask), None, None, prompt, torch.zeros(2, 3, dtype=torch.bool))  # prefix masked
    with torch.no_grad():
        plain0 = lm.model(input_ids=ids[:1, 2:]).last_hidden_state[:, -1]  # (1, 32), no padding, no prefix
        plain1 = lm.model(input_ids=ids[1:]).last_hidden_state[:, -1]
    want = backbone.out(torch.cat([plain0, plain1]))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_prefix_changes_the_state_and_gets_gradients(lm):
    backbone = PrefixLM(lm, d=8, prefix_hidden=16, dropout=0.0)
    ids, mask = torch.tensor([[3, 4, 5]]), torch.ones(1, 3, dtype=torch.long)
    prompt = torch.randn(1, 3, 8, requires_grad=True)
    on = backbone(batch(ids, mask), None, None, prompt, torch.ones(1, 3, dtype=torch.bool))
    off = backbone(batch(ids, mask), None, None, prompt, torch.zeros(1, 3, dtype=torch.bool))
    assert on.shape == (1, 8) and not torch.allclose(on, off)
    on.sum().backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert all(p.grad is None for p in lm.parameters())  # the LM stays frozen
    n_kv = lm.config.num_key_value_heads * (lm.config.hidden_size // lm.config.num_attention_heads)
    assert backbone.to_prefix[-1].out_features == lm.config.num_hidden_layers * 2 * n_kv
