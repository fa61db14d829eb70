"""Response generation: prompts, triple insertion, the LoRA -> GGUF write-back against transformers, streaming,
the training task's loss, and the serve-time repair (SmolLM2 or tiny random models only)."""
from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from ecrs.data.reviews import MovieKnowledge, ReviewKB
from ecrs.inference.llama import banned_next
from ecrs.inference.prompts import (
    FIRST_SENTENCES,
    GenerationPrompt,
    first_sentence,
    insert_triples,
    render,
    serve_prompt,
)

PROMPT = GenerationPrompt(title="Titanic (1997)", name="Titanic", entities=["Kate Winslet", "Billy Zane"],
                          triples=[("director", "James Cameron"), ("star", "Kate Winslet")],
                          first="You might like Titanic (1997).")


# ---------------------------------------------------------------- prompts

def test_plain_prompt_has_ecr_segments_in_order_and_ends_with_the_first_sentence():
    text = render(PROMPT, "plain")
    assert text.splitlines() == [
        "Movie Name: Titanic (1997)",
        "Related Entities: Kate Winslet, Billy Zane",
        "Related Knowledge from KG: Titanic's director is James Cameron, Titanic's star is Kate Winslet",
        "First Sentence: You might like Titanic (1997).",
    ]


def test_chat_prompt_puts_segments_in_the_user_turn_and_starts_the_answer():
    text = render(PROMPT, "chat")
    assert text.startswith("<|im_start|>system\n")
    user = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
    assert user.splitlines()[0] == "Movie Name: Titanic (1997)"
    assert text.endswith("<|im_start|>assistant\nYou might like Titanic (1997).")


def test_dialogue_variant_adds_turns_and_emotion_before_the_first_sentence():
    p = GenerationPrompt(**{**PROMPT.__dict__, "dialogue": [("seeker", "I loved Avatar!"),
                                                            ("recommender", "Nice. " + "x " * 60)],
                            "emotion": [("like", 0.8), ("happy", 0.3)]})
    lines = render(p, "plain").splitlines()
    assert lines[3:7] == ["Dialogue:", "User: I loved Avatar!", "You: " + " ".join(["x"] * 40), "User Emotion: like, happy"]
    assert lines[-1].startswith("First Sentence:")


def test_friend_prompt_adds_genres_and_plot_only_where_asked_and_its_task_is_the_system_message():
    m = MovieKnowledge(entity=5, title="Titanic (1997)", name="Titanic", triples=[("director", 1, "James Cameron")],
                       genres=["drama", "romance"], plot="A rich girl and a poor artist fall in love on a ship.")
    ecr = serve_prompt(m, [("seeker", "something sad")])
    assert ecr.genres == [] and ecr.plot == "" and "ship" not in ecr.knowledge_text()  # ECR's prompt unchanged
    p = serve_prompt(m, [("seeker", "something sad")], plot=True)
    assert "poor artist" in p.knowledge_text()  # the grounding checker may let the reply use the plot
    text = render(p, "friend")
    system = text.split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0]
    user = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
    assert "two or three short sentences" in system and "never repeat" in system
    assert user.splitlines()[:3] == ["Movie Name: Titanic (1997)", "Genres: drama, romance",
                                     "Plot: A rich girl and a poor artist fall in love on a ship."]
    assert "User: something sad" in user and text.endswith(f"<|im_start|>assistant\n{p.first}")
    with pytest.raises(ValueError, match="plain, chat or friend"):
        render(p, "other")  # type: ignore[arg-type]


def test_first_sentence_names_the_movie_and_is_deterministic():
    s = first_sentence("Heat (1995)", seed=7)
    assert "Heat (1995)" in s and s == first_sentence("Heat (1995)", seed=7)
    assert {first_sentence("M", seed=i) for i in range(50)} == {t.format(title="M") for t in FIRST_SENTENCES}


def test_serve_prompt_takes_the_first_facts_and_review_entities():
    m = MovieKnowledge(entity=5, title="Titanic (1997)", name="Titanic",
                       triples=[("director", 1, "James Cameron"), ("star", 2, "Kate Winslet"),
                                ("star", 3, "Billy Zane")],
                       review_entities=[(2, "Kate Winslet")])
    p = serve_prompt(m, [("seeker", "a"), ("recommender", "b"), ("seeker", "c")], [("like", 0.9)])
    assert p.triples == [("director", "James Cameron"), ("star", "Kate Winslet")]
    assert p.entities == ["Kate Winslet"] and p.dialogue == [("recommender", "b"), ("seeker", "c")]
    assert serve_prompt(m, [("seeker", "a")], n_turns=0).dialogue == []


def test_triple_insertion_probability_extremes_and_positions():
    target = "One. Two. Three."
    triples = [("director", "James Cameron"), ("star", "Kate Winslet")]
    assert insert_triples(target, "Titanic", triples, random.Random(0), p=0.0) == target
    out = insert_triples(target, "Titanic", triples, random.Random(0), p=1.0)
    assert "Titanic's director is James Cameron." in out and "Titanic's star is Kate Winslet." in out
    assert out.count(".") == 5 and all(s in out for s in ("One.", "Two.", "Three."))  # whole sentences added
    # With p = 0.1, about one triple in ten is inserted.
    rng = random.Random(1)
    n = sum("director" in insert_triples(target, "T", triples[:1], rng, 0.1) for _ in range(2000))
    assert 140 < n < 260


# ---------------------------------------------------------------- decoding rules

def test_banned_next_is_the_no_repeat_3gram_rule():
    assert banned_next([1, 2, 3, 1], 3) == set()
    assert banned_next([1, 2, 3, 1, 2], 3) == {3}
    assert banned_next([1, 2, 3, 1, 2, 4, 1, 2], 3) == {3, 4}
    assert banned_next([7], 3) == set()


# ---------------------------------------------------------------- GGUF write-back vs transformers (SmolLM2)

CHAT = "<|im_start|>user\nTell me about the movie Titanic.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory):
    """SmolLM2 + a random LoRA (r 4, every projection type, layers 0/15/29): the merged transformers model, the
    merged GGUF written as F32 and Q8_0, and llama.cpp engines on those files and on the base file."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from ecrs.inference.hf_decode import HFEngine, load_causal_lm
    from ecrs.inference.llama import LlamaCppEngine, export_merged_gguf
    from ecrs.inference.model_files import smollm2_gguf

    torch.set_num_threads(2)
    base = smollm2_gguf()
    model, tok = load_causal_lm(base)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=8, layers_to_transform=[0, 15, 29],
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    state = get_peft_model_state_dict(peft_model)
    out = tmp_path_factory.mktemp("gguf")
    files = {q: export_merged_gguf(base, state, 8 / 4, out / f"m_{q}.gguf", q) for q in ("F32", "Q8_0", "Q5_1")}
    merged = HFEngine(peft_model.merge_and_unload().eval(), tok)
    engines = {q: LlamaCppEngine.open(files[q], n_threads=2) for q in ("F32", "Q8_0")}
    engines["base"] = LlamaCppEngine.open(base, n_threads=2)
    return {"merged": merged, "files": files, "base": base, "engines": engines}


def test_gguf_write_back_greedy_output_equals_transformers(tiny_lora):
    """F32 write-back: the same 16 greedy tokens as the merged transformers model (exact). Q8_0 (what we serve):
    within quantization noise, stated as ≥ 12 of the first 16 tokens equal and the first 4 identical."""
    engines = tiny_lora["engines"]
    reference = tiny_lora["merged"].greedy_ids(CHAT, 16)
    assert len(reference) == 16
    assert engines["F32"].greedy_ids(CHAT, 16) == reference
    q8 = engines["Q8_0"].greedy_ids(CHAT, 16)
    assert q8[:4] == reference[:4] and sum(a == b for a, b in zip(q8, reference)) >= 12
    assert engines["base"].greedy_ids(CHAT, 16) != reference  # the adapter matters


def test_gguf_write_back_as_q5_1_types_only_the_adapted_tensors(tiny_lora):
    import gguf

    from ecrs.inference.llama import read_gguf

    src, dst = read_gguf(tiny_lora["base"]), read_gguf(tiny_lora["files"]["Q5_1"])
    before = {t.name: t.tensor_type for t in src.tensors}
    after = {t.name: t.tensor_type for t in dst.tensors}
    assert after["blk.0.attn_q.weight"] == after["blk.29.ffn_down.weight"] == gguf.GGMLQuantizationType.Q5_1
    assert after["blk.1.attn_q.weight"] == before["blk.1.attn_q.weight"]  # layer 1 has no adapter: copied
    assert dst.get_field(gguf.Keys.General.FILE_TYPE).contents() == int(gguf.LlamaFileType.MOSTLY_Q5_1)


def test_gguf_write_back_copies_metadata_and_quantizes_only_adapted_tensors(tiny_lora):
    from ecrs.inference.llama import read_gguf

    src, dst = read_gguf(tiny_lora["base"]), read_gguf(tiny_lora["files"]["Q8_0"])
    for key in ("tokenizer.chat_template", "llama.attention.head_count", "tokenizer.ggml.eos_token_id"):
        assert src.get_field(key).contents() == dst.get_field(key).contents()
    tokens = [r.get_field("tokenizer.ggml.tokens") for r in (src, dst)]
    assert len(tokens[0].data) == len(tokens[1].data) == 49152
    assert all(np.array_equal(tokens[0].parts[i], tokens[1].parts[j])
               for i, j in zip(tokens[0].data[::97], tokens[1].data[::97]))
    types = {t.name: t.tensor_type.name for t in dst.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.29.ffn_down.weight"] == "Q8_0"
    assert types["blk.1.attn_q.weight"] == "Q4_1"  # untouched layer copied as is
    assert len(dst.tensors) == len(src.tensors)


def test_llamacpp_stream_pieces_concatenate_to_the_generation(tiny_lora):
    engine, merged = tiny_lora["engines"]["F32"], tiny_lora["merged"]
    pieces = list(engine.stream(CHAT, 16, no_repeat_ngram=0, stop_at_newline=False))
    assert len(pieces) > 3
    assert "".join(pieces) == engine.generate(CHAT, 16, no_repeat_ngram=0, stop_at_newline=False)
    assert "".join(pieces) == merged.tok.decode(engine.greedy_ids(CHAT, 16))
    # The transformers engine streams the same text.
    assert "".join(merged.stream(CHAT, 16, no_repeat_ngram=0, stop_at_newline=False)) == "".join(pieces)


def test_llamacpp_does_not_keep_every_past_prompt_in_memory(tiny_lora):
    """A server answers a new prompt every turn: llama.cpp's host-RAM prompt cache (8 GiB by default) kept each one
    (~15 MB a prompt here), so the server grew without bound. 30 distinct prompts now leave RSS flat."""
    import psutil

    engine = tiny_lora["engines"]["base"]
    proc = psutil.Process()
    engine.greedy_ids(CHAT, 2)
    before = proc.memory_info().rss
    for i in range(30):
        engine.greedy_ids(f"Prompt {i}: " + " ".join(f"word{i}-{j}" for j in range(120)), 2)
    assert proc.memory_info().rss - before < 40 * 2**20


def test_llamacpp_no_repeat_3gram_bans_exactly_what_transformers_bans(tiny_lora):
    engine, merged = tiny_lora["engines"]["F32"], tiny_lora["merged"]
    prompt = CHAT + "Say 'la la la la la la' ten times: la la la"
    engine.generate(prompt, 8, no_repeat_ngram=3, stop_at_newline=False)
    ids = engine.last.ids
    assert engine.last.restarts >= 1  # the rule fired: plain greedy repeats "la"
    assert all(ids[i:i + 3] != ids[j:j + 3] for i in range(len(ids) - 2) for j in range(i + 1, len(ids) - 2))
    assert ids == merged.greedy_ids(prompt, 8, no_repeat_ngram=3)


# ---------------------------------------------------------------- training task (tiny random model)

def _tiny_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                            lora_dropout=0.0))


def test_task_loss_on_target_positions_equals_hf_loss_with_masked_labels():
    from ecrs.training.generator import GeneratorTask

    model = _tiny_peft().eval()
    rows = [([5, 6, 7, 8, 9, 10], 3), ([11, 12, 13, 14], 2)]  # (ids, prompt length)
    task = GeneratorTask(model, rows, rows, pad_id=0, micro_size=2)
    micro = task.make_micro(np.array([0, 1]))
    assert micro["labels"].tolist() == [[-100, -100, -100, 8, 9, 10], [-100, -100, 13, 14, -100, -100]]
    ours = task.loss(micro)
    ref = model(input_ids=micro["input_ids"], attention_mask=micro["attention_mask"], labels=micro["labels"]).loss
    assert torch.allclose(ours, ref, atol=1e-5)


def test_lora_view_checkpoints_only_adapter_weights_and_restores_them():
    from ecrs.training.generator import LoraView

    model = _tiny_peft()
    view = LoraView(model)
    state = view.state_dict()
    assert state and all("lora_" in k for k in state)
    assert sum(p.numel() for p in view.parameters()) == sum(v.numel() for v in state.values())
    with torch.no_grad():
        for p in view.parameters():
            p.add_(1.0)
    view.load_state_dict(state)
    assert all(torch.equal(p, state[n]) for n, p in view.named_lora())


def test_generator_recipe_config_defaults_are_the_papers_and_nested_overrides_keep_them():
    from ecrs.config import load_config
    from ecrs.training.generator import GeneratorTrainConfig

    cfg = load_config(GeneratorTrainConfig, None, ["train.max_steps=5"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.max_steps, cfg.lora.r) == (1e-4, 4, 5, 16)


# ---------------------------------------------------------------- the served generator (fake engine)

class _FakeEngine:
    def __init__(self, text: str):
        self.text = text

    def stream(self, prompt: str, max_tokens: int = 60, no_repeat_ngram: int = 3,
               stop_at_newline: bool = True) -> Iterator[str]:
        for i in range(0, len(self.text), 3):
            yield self.text[i:i + 3]


class _FakeChecker:
    """Flags any sentence containing 'Tom Hanks' or '1999'."""

    def knowledge(self, text, entities=()):
        return text

    def violations(self, reply, knowledge):
        from ecrs.inference.grounding import Violation

        return [Violation("name", "Tom Hanks", 0)] if ("Tom Hanks" in reply or "1999" in reply) else []


def _generator(text: str, **settings):
    from ecrs.inference.generator import GeneratorSettings, ResponseGenerator

    m = MovieKnowledge(entity=5, title="Titanic (1997)", name="Titanic", triples=[("director", 1, "James Cameron")])
    kb = ReviewKB(movies={5: m}, stats={})
    return ResponseGenerator(_FakeEngine(text), kb, _FakeChecker(), GeneratorSettings(**settings))


def test_stream_concatenation_equals_generate_and_repair_drops_bad_and_unfinished_sentences():
    gen = _generator(" It is moving. Tom Hanks is in it. Cameron made it in 1999. Kate is great! And the")
    pieces = list(gen.stream(5, [("seeker", "hi")], [("like", 0.9)]))
    reply = "".join(pieces)
    assert reply == gen.generate(5)
    assert pieces[0] == first_sentence("Titanic (1997)", 5)
    assert reply == pieces[0] + " It is moving. Kate is great!"
    detailed = gen.generate_detailed(5)
    assert detailed.reply == reply and detailed.violations and "Tom Hanks" in detailed.raw


def test_stream_without_repair_keeps_everything():
    gen = _generator(" It is moving. Tom Hanks is in it. And the", repair=False)
    assert gen.generate(5).endswith(" It is moving. Tom Hanks is in it. And the")


def test_unknown_movie_is_a_clear_error():
    from ecrs.errors import EcrsError

    with pytest.raises(EcrsError, match="not in the catalogue"):
        _generator("x").generate(999)


def test_serve_reply_length_overrides_the_generator_setting(tmp_path):
    """`ecrs serve/chat --set reply_tokens=N` reach the engine; N < 1 is refused. (`generator=zero-shot` is the base
    SmolLM2, loaded from its GGUF package; a named folder without a trained generator is an error, not a fallback.)"""
    from ecrs.errors import EcrsError
    from ecrs.inference.pipeline import load_generator

    gen = load_generator(tmp_path, "zero-shot", max_tokens=7)
    assert gen.settings.max_tokens == 7 and gen.name == "zero-shot"
    with pytest.raises(EcrsError, match="reply tokens"):
        load_generator(tmp_path, "zero-shot", max_tokens=0)
    with pytest.raises(EcrsError, match="no trained generator here"):
        load_generator(tmp_path, str(tmp_path / "untrained"))
    friend = load_generator(tmp_path, "friend:smollm2", max_tokens=9)  # a base model zero-shot, the friend prompt
    assert (friend.settings.format, friend.settings.dialogue, friend.settings.max_tokens) == ("friend", True, 9)
    assert friend.settings.n_turns == 1  # the person's last message: a shorter prompt
    with pytest.raises(EcrsError, match="no such file"):
        load_generator(tmp_path, "friend:" + str(tmp_path / "missing.gguf"))


def test_the_default_generator_is_qwen_once_installed_else_the_trained_one_else_the_template(tmp_path,
                                                                                                monkeypatch):
    from ecrs.inference.model_files import QWEN_MODELS
    from ecrs.inference.pipeline import DEFAULT_FRIEND, DEFAULT_GENERATOR, default_generator

    monkeypatch.setenv("ECRS_MODELS", str(tmp_path / "models"))
    assert default_generator(tmp_path) is None  # nothing installed or trained: the template
    (tmp_path / DEFAULT_GENERATOR).mkdir(parents=True)
    (tmp_path / DEFAULT_GENERATOR / "generator.json").write_text("{}")
    assert default_generator(tmp_path) == str(tmp_path / DEFAULT_GENERATOR)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / QWEN_MODELS["1.5b"].file).write_bytes(b"")  # only looked at, never opened here
    assert default_generator(tmp_path) == DEFAULT_FRIEND


def test_generator_base_names_resolve_or_fail_clearly(tmp_path):
    from ecrs.errors import EcrsError
    from ecrs.inference.model_files import resolve_base

    assert resolve_base(str(tmp_path)) == tmp_path
    with pytest.raises(EcrsError, match="no such file"):
        resolve_base(str(tmp_path / "missing.gguf"))
    with pytest.raises(EcrsError, match="unknown Qwen size"):
        resolve_base("qwen-7b")
