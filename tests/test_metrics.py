"""Metrics against hand-worked values and independent slow implementations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ecrs.evaluation import metrics
from ecrs.evaluation.metrics import (
    BatchAUC,
    auc,
    batch_auc,
    bleu,
    bleu_n,
    distinct_n,
    distinct_n_per_sentence,
    mrr_at_k,
    ndcg_at_k,
    ranks_of_targets,
    recall_at_k,
    recall_true_at_k,
    summarize_ranking,
    target_log_probs,
)

# ---------------------------------------------------------------------------------------------------------------
# ranks_of_targets
# ---------------------------------------------------------------------------------------------------------------

SCORES = np.array([
    [0.1, 0.9, 0.5, 0.3],   # target 2 (0.5): only 0.9 is above            -> rank 2
    [0.4, 0.4, 0.2, 0.8],   # target 0 (0.4): 0.8 above, candidate 1 ties  -> pessimistic 3, optimistic 2
])
TARGETS = np.array([2, 0])


def test_ranks_hand_worked_pessimistic_ties():
    np.testing.assert_array_equal(ranks_of_targets(SCORES, TARGETS), [2, 3])


def test_ranks_optimistic_ties():
    np.testing.assert_array_equal(ranks_of_targets(SCORES, TARGETS, ties="optimistic"), [2, 2])


def test_ranks_constant_scores_are_worst_pessimistic_best_optimistic():
    scores = np.zeros((3, 5))
    targets = np.array([0, 2, 4])
    np.testing.assert_array_equal(ranks_of_targets(scores, targets), [5, 5, 5])
    np.testing.assert_array_equal(ranks_of_targets(scores, targets, ties="optimistic"), [1, 1, 1])


def test_ranks_exclusion_moves_target_up():
    # Row 0: excluding candidate 1 (0.9, above the target) -> rank 1.
    # Row 1: excluding candidate 3 (0.8) -> only the tie remains: pessimistic 2.
    np.testing.assert_array_equal(ranks_of_targets(SCORES, TARGETS, exclude=[[1], [3]]), [1, 2])
    # Excluding lower-scored candidates changes nothing; duplicates and numpy arrays are accepted.
    np.testing.assert_array_equal(ranks_of_targets(SCORES, TARGETS, exclude=[np.array([0, 0, 3]), [2]]), [2, 3])
    # Empty exclusions are a no-op.
    np.testing.assert_array_equal(ranks_of_targets(SCORES, TARGETS, exclude=[[], []]), [2, 3])


def test_ranks_exclusion_of_target_raises():
    with pytest.raises(ValueError, match="target"):
        ranks_of_targets(SCORES, TARGETS, exclude=[[2], []])


@pytest.mark.parametrize("kwargs", [
    {"scores": np.zeros(4), "targets": np.array([0])},                            # 1-D scores
    {"scores": np.zeros((2, 4)), "targets": np.array([0])},                       # wrong number of targets
    {"scores": np.zeros((2, 4)), "targets": np.array([0, 4])},                    # target out of range
    {"scores": np.zeros((2, 4)), "targets": np.array([0.0, 1.0])},                # float targets
    {"scores": np.array([[np.nan, 1.0]]), "targets": np.array([0])},              # NaN score
    {"scores": np.zeros((2, 4)), "targets": np.array([0, 1]), "exclude": [[1]]},  # exclude of wrong length
    {"scores": np.zeros((1, 4)), "targets": np.array([0]), "exclude": [[7]]},     # exclude out of range
    {"scores": np.zeros((1, 4)), "targets": np.array([0]), "ties": "random"},
])
def test_ranks_invalid_input_raises(kwargs):
    with pytest.raises(ValueError):
        ranks_of_targets(**kwargs)


def test_ranks_against_slow_loop(monkeypatch):
    monkeypatch.setattr(metrics, "_RANK_CHUNK_ROWS", 7)   # exercise several row chunks, one partial
    rng = np.random.default_rng(0)
    n, c = 40, 12
    scores = rng.integers(0, 5, size=(n, c)).astype(float)   # few distinct values: many ties
    targets = rng.integers(0, c, size=n)
    exclude = [[j for j in rng.choice(c, size=3, replace=False) if j != t] for t in targets]
    got = ranks_of_targets(scores, targets, exclude=exclude)
    for i in range(n):
        t = targets[i]
        above = sum(1 for j in range(c) if j != t and j not in exclude[i] and scores[i, j] >= scores[i, t])
        assert got[i] == 1 + above


# ---------------------------------------------------------------------------------------------------------------
# recall / MRR / NDCG / RT
# ---------------------------------------------------------------------------------------------------------------

RANKS = np.array([1, 3, 7, 60])
LIKED = np.array([False, True, True, True])   # liked ranks: 3, 7, 60


def test_recall_hand_worked():
    assert recall_at_k(RANKS, 1) == pytest.approx(1 / 4)
    assert recall_at_k(RANKS, 10) == pytest.approx(3 / 4)
    assert recall_at_k(RANKS, 50) == pytest.approx(3 / 4)
    assert recall_at_k(RANKS, 60) == pytest.approx(1.0)


def test_mrr_hand_worked():
    # (1 + 1/3 + 1/7 + 0) / 4 = (21 + 7 + 3) / 21 / 4 = 31/84
    assert mrr_at_k(RANKS, 10) == pytest.approx(31 / 84)
    assert mrr_at_k(RANKS, 50) == pytest.approx(31 / 84)
    # k = 5: (1 + 1/3) / 4 = 1/3
    assert mrr_at_k(RANKS, 5) == pytest.approx(1 / 3)


def test_ndcg_hand_worked():
    # 1/log2(2) = 1, 1/log2(4) = 1/2, 1/log2(8) = 1/3 -> (1 + 1/2 + 1/3) / 4 = 11/24
    assert ndcg_at_k(RANKS, 10) == pytest.approx(11 / 24)
    # k = 5: (1 + 1/2) / 4 = 3/8
    assert ndcg_at_k(RANKS, 5) == pytest.approx(3 / 8)
    # NDCG@1 = MRR@1 = R@1
    assert ndcg_at_k(RANKS, 1) == pytest.approx(recall_at_k(RANKS, 1))


def test_recall_true_hand_worked():
    assert recall_true_at_k(RANKS, LIKED, 1) == pytest.approx(0.0)
    assert recall_true_at_k(RANKS, LIKED, 10) == pytest.approx(2 / 3)
    assert recall_true_at_k(RANKS, LIKED.astype(int), 60) == pytest.approx(1.0)


def test_recall_true_without_liked_samples_raises():
    with pytest.raises(ValueError, match="liked"):
        recall_true_at_k(RANKS, np.zeros(4, dtype=bool), 10)


@pytest.mark.parametrize("fn", [recall_at_k, mrr_at_k, ndcg_at_k])
def test_rank_metrics_invalid_input_raises(fn):
    with pytest.raises(ValueError):
        fn(np.array([], dtype=int), 10)              # no samples
    with pytest.raises(ValueError):
        fn(np.array([0, 1]), 10)                     # ranks are 1-based
    with pytest.raises(ValueError):
        fn(np.array([1.0, 2.0]), 10)                 # float ranks
    with pytest.raises(ValueError):
        fn(RANKS, 0)                                 # k < 1


def test_summarize_ranking():
    out = summarize_ranking(RANKS, LIKED)
    assert list(out) == ["R@1", "R@10", "R@50", "RT@1", "RT@10", "RT@50",
                         "MRR@10", "NDCG@10", "MRR@50", "NDCG@50", "n_samples", "n_liked"]
    assert out["R@10"] == pytest.approx(3 / 4)
    assert out["RT@10"] == pytest.approx(2 / 3)
    assert out["MRR@10"] == pytest.approx(31 / 84)
    assert out["NDCG@10"] == pytest.approx(11 / 24)
    # NDCG@50 adds nothing over @10 here (rank 60 > 50).
    assert out["NDCG@50"] == pytest.approx(11 / 24)
    assert out["n_samples"] == 4 and out["n_liked"] == 3
    assert isinstance(out["n_samples"], int) and isinstance(out["n_liked"], int)


# ---------------------------------------------------------------------------------------------------------------
# AUC
# ---------------------------------------------------------------------------------------------------------------

def slow_pairwise_auc(scores, labels):
    """Independent O(P*M) definition: fraction of (liked, disliked) pairs ordered correctly, ties = 1/2."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def test_auc_hand_worked():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 0.35>0.1, 0.35<0.4, 0.8>both -> 3/4
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)


def test_auc_ties_count_half():
    # positives 0.5, 0.9 vs negatives 0.5, 0.2: 0.5=0.5 (1/2), 0.5>0.2, 0.9>both -> 3.5/4
    assert auc(np.array([0.5, 0.5, 0.2, 0.9]), np.array([1, 0, 0, 1])) == pytest.approx(0.875)
    # All scores equal -> 1/2.
    assert auc(np.ones(6), np.array([1, 0, 1, 0, 0, 1])) == pytest.approx(0.5)


def test_auc_one_class_raises():
    with pytest.raises(ValueError, match="one class"):
        auc(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="one class"):
        auc(np.array([0.1, 0.2]), np.array([False, False]))


@pytest.mark.parametrize("scores,labels", [
    (np.array([0.1, np.nan]), np.array([0, 1])),
    (np.array([0.1, 0.2]), np.array([0, 2])),          # labels not 0/1
    (np.array([0.1, 0.2]), np.array([0, 1, 1])),       # length mismatch
    (np.array([[0.1, 0.2]]), np.array([0, 1])),        # 2-D scores
])
def test_auc_invalid_input_raises(scores, labels):
    with pytest.raises(ValueError):
        auc(scores, labels)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_slow_pairwise_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    scores = np.round(rng.normal(size=n), 1)           # rounding makes ties likely
    labels = rng.integers(0, 2, size=n)
    labels[:2] = [0, 1]                                # both classes present
    got = auc(scores, labels)
    assert got == pytest.approx(slow_pairwise_auc(scores, labels), abs=1e-12)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert got == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_batch_auc_differs_from_global():
    # batch 1: liked 0.9 vs disliked 0.8 -> 1;  batch 2: liked 0.3 vs disliked 0.2 -> 1;
    # batch 3: two liked (0.5, 0.6), one class -> skipped.  Batch AUC = mean(1, 1) = 1.
    # Global: liked 0.9, 0.3, 0.5, 0.6 vs disliked 0.8, 0.2: 0.9 beats 2, the others beat only 0.2 -> 5/8.
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.5, 0.6])
    labels = np.array([1, 0, 1, 0, 1, 1])
    assert batch_auc(scores, labels, batch_size=2) == BatchAUC(value=1.0, batches_used=2, batches_skipped=1)
    assert auc(scores, labels) == pytest.approx(5 / 8)


def test_batch_auc_depends_on_order_and_size():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.5, 0.6])
    labels = np.array([1, 0, 1, 0, 1, 1])
    # Reordered: batches (0.9 L, 0.3 L) skipped, (0.8 D, 0.2 D) skipped, (0.5 L, 0.6 L) skipped -> undefined.
    order = np.array([0, 2, 1, 3, 4, 5])
    with pytest.raises(ValueError, match="none of the 3 batches"):
        batch_auc(scores[order], labels[order], batch_size=2)
    # One batch holding everything = the global AUC.
    whole = batch_auc(scores, labels, batch_size=32)
    assert whole.value == pytest.approx(auc(scores, labels))
    assert (whole.batches_used, whole.batches_skipped) == (1, 0)
    # Size 4: batch (0.9 L, 0.8 D, 0.3 L, 0.2 D) -> 3/4; batch (0.5 L, 0.6 L) skipped.
    assert batch_auc(scores, labels, batch_size=4) == BatchAUC(value=0.75, batches_used=1, batches_skipped=1)


def test_batch_auc_last_partial_batch_counts():
    # size 3: (1 L 0.2, D 0.1, L 0.3) -> 1; (D 0.9, L 0.4) partial -> 0; mean 1/2.
    scores = np.array([0.2, 0.1, 0.3, 0.9, 0.4])
    labels = np.array([1, 0, 1, 0, 1])
    assert batch_auc(scores, labels, batch_size=3) == BatchAUC(value=0.5, batches_used=2, batches_skipped=0)


def test_batch_auc_invalid_batch_size_raises():
    with pytest.raises(ValueError):
        batch_auc(np.array([0.1, 0.2]), np.array([0, 1]), batch_size=0)


# ---------------------------------------------------------------------------------------------------------------
# Distinct-n
# ---------------------------------------------------------------------------------------------------------------

TEXTS = ["the cat sat", "The cat ran", ""]
# lowercased unigrams: the cat sat | the cat ran | (none)  -> 6 total, 4 distinct {the, cat, sat, ran}
# bigrams: (the cat) (cat sat) | (the cat) (cat ran)     -> 4 total, 3 distinct
# trigrams: (the cat sat) | (the cat ran)                -> 2 total, 2 distinct
# 4-grams: none


def test_distinct_true_ratio_hand_worked():
    assert distinct_n(TEXTS, 1) == pytest.approx(4 / 6)
    assert distinct_n(TEXTS, 2) == pytest.approx(3 / 4)
    assert distinct_n(TEXTS, 3) == pytest.approx(1.0)
    assert distinct_n(TEXTS, 4) == 0.0


def test_distinct_per_sentence_hand_worked_counts_empty_generation():
    # Divides by 3 sentences, the empty one included.
    assert distinct_n_per_sentence(TEXTS, 1) == pytest.approx(4 / 3)
    assert distinct_n_per_sentence(TEXTS, 2) == pytest.approx(3 / 3)
    assert distinct_n_per_sentence(TEXTS, 3) == pytest.approx(2 / 3)
    assert distinct_n_per_sentence(TEXTS, 4) == 0.0
    # Without the empty generation the per-sentence score would be higher: it must never be skipped.
    assert distinct_n_per_sentence(TEXTS[:2], 1) == pytest.approx(4 / 2)


def test_distinct_ngrams_do_not_cross_texts():
    # "a b" + "c d": bigrams (a b), (c d) only; (b c) would appear if texts were concatenated.
    assert distinct_n(["a b", "c d"], 2) == pytest.approx(1.0)
    assert distinct_n_per_sentence(["a b", "c d"], 2) == pytest.approx(2 / 2)
    assert distinct_n(["a a a a"], 1) == pytest.approx(1 / 4)


def test_distinct_only_empty_generations():
    assert distinct_n(["", "   "], 1) == 0.0
    assert distinct_n_per_sentence(["", "   "], 1) == 0.0


@pytest.mark.parametrize("fn", [distinct_n, distinct_n_per_sentence])
def test_distinct_invalid_input_raises(fn):
    with pytest.raises(ValueError):
        fn([], 1)
    with pytest.raises(ValueError):
        fn(["a b"], 0)
    with pytest.raises(TypeError):
        fn("a b", 1)
    with pytest.raises(TypeError):
        fn(["a", None], 1)


# ---------------------------------------------------------------------------------------------------------------
# BLEU
# ---------------------------------------------------------------------------------------------------------------

def test_bleu_identical_is_100():
    pytest.importorskip("sacrebleu")
    texts = ["the cat sat on the mat", "i loved that movie , you should see it"]
    assert bleu(texts, texts) == pytest.approx(100.0)
    for n in range(1, 5):
        assert bleu_n(texts, texts, n) == pytest.approx(100.0)


def test_bleu_n_hand_worked():
    pytest.importorskip("sacrebleu")
    # hyp a b c d vs ref a b x d: equal lengths -> BP = 1.
    # p1 = 3/4 (a, b, d); p2 = 1/3 (a b of a b, b c, c d); p3 = 0/2.
    hyps, refs = ["a b c d"], ["a b x d"]
    assert bleu_n(hyps, refs, 1) == pytest.approx(75.0)
    assert bleu_n(hyps, refs, 2) == pytest.approx(100 / 3)
    assert bleu_n(hyps, refs, 3) == 0.0
    # Short hypothesis: h = 2, r = 6 -> BP = exp(1 - 6/2) = exp(-2); p1 = 2/2.
    assert bleu_n(["the cat"], ["the cat sat on the mat"], 1) == pytest.approx(100 * math.exp(-2))
    # Full BLEU is below 100 and above 0 for a partial match.
    assert 0.0 < bleu(["the cat sat on a mat"], ["the cat sat on the mat"]) < 100.0


def test_bleu_empty_hypothesis_counts():
    pytest.importorskip("sacrebleu")
    refs = ["the cat sat on the mat", "the dog ran"]
    # An empty generation adds reference length and no matches: the score drops, it is not skipped.
    assert bleu_n(["the cat sat on the mat", ""], refs, 1) < bleu_n(refs[:1], refs[:1], 1)


def test_bleu_invalid_input_raises():
    with pytest.raises(ValueError):
        bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        bleu([], [])
    with pytest.raises(ValueError):
        bleu_n(["a"], ["a"], 5)


# ---------------------------------------------------------------------------------------------------------------
# Target log-probabilities (what the AUC compares across rows)
# ---------------------------------------------------------------------------------------------------------------

def test_target_log_probs_hand_worked():
    # row 0: logits (ln 3, 0, 0) -> p(target 0) = 3/5; row 1: equal logits -> 1/3 for any target
    scores = np.array([[np.log(3.0), 0.0, 0.0], [10.0, 10.0, 10.0]])
    got = target_log_probs(scores, np.array([0, 2]))
    assert np.exp(got) == pytest.approx([3 / 5, 1 / 3])


def test_target_log_probs_ignore_row_offsets_that_raw_logits_do_not():
    # The liked target has the lower raw logit but the larger probability: the logit AUC is 0, the AUC on
    # probabilities is 1 (shifting a row by a constant changes no probability).
    scores = np.array([[2.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    labels = np.array([1, 0])
    assert auc(scores[:, 0], labels) == 0.0
    assert auc(target_log_probs(scores, np.array([0, 0])), labels) == 1.0
    shifted = scores + np.array([[-50.0], [7.0]])
    assert target_log_probs(shifted, np.array([0, 0])) == pytest.approx(target_log_probs(scores, np.array([0, 0])))


def test_target_log_probs_exclude_renormalises_over_the_rest():
    scores = np.zeros((1, 4))
    assert np.exp(target_log_probs(scores, np.array([1]), exclude=[[0, 3]])) == pytest.approx([0.5])
    with pytest.raises(ValueError, match="contains the target"):
        target_log_probs(scores, np.array([1]), exclude=[[1]])


@pytest.mark.parametrize("scores,targets", [
    (np.zeros((0, 3)), np.zeros(0, dtype=int)),
    (np.array([[0.0, np.inf]]), np.array([0])),
    (np.zeros((2, 3)), np.array([0, 3])),
    (np.zeros((2, 3)), np.array([0.0, 1.0])),
])
def test_target_log_probs_rejects_malformed(scores, targets):
    with pytest.raises(ValueError):
        target_log_probs(scores, targets)


def test_paired_bootstrap_resamples_both_arrays_together():
    from ecrs.evaluation.metrics import paired_bootstrap

    a = np.arange(50, dtype=float)
    # Paired: a - (a - 1) is 1 on every resample, so the interval collapses to the point. Unpaired resampling
    # of the two arrays would spread it over about ±8.
    r = paired_bootstrap(lambda x, y: x.mean() - y.mean(), [a, a - 1], n_resamples=500)
    assert r.difference == r.low == r.high == pytest.approx(1.0) and r.excludes_zero
    coin = (np.arange(400) % 2).astype(float)
    r = paired_bootstrap(lambda x, y: x.mean() - y.mean(), [coin, coin[::-1]], n_resamples=500)
    assert r.low < 0 < r.high and not r.excludes_zero
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap(lambda x, y: 0.0, [a, a[:10]])


def test_seed_difference_is_welchs_interval_by_hand():
    from ecrs.evaluation.metrics import seed_difference

    # a = b + 1 with sample variance 1 each: se = sqrt(1/3 + 1/3), Welch df = 4, t(0.975, 4) = 2.7764.
    r = seed_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    half = 2.7764451 * (2 / 3) ** 0.5
    assert r.difference == pytest.approx(1.0) and (r.n_a, r.n_b) == (3, 3)
    assert (r.low, r.high) == (pytest.approx(1 - half, abs=1e-6), pytest.approx(1 + half, abs=1e-6))
    assert not r.excludes_zero
    # A constant b: all the spread is a's (variance 2, n 2 -> se 1, df 1, t = 12.7062).
    r = seed_difference([0.0, 2.0], [0.0, 0.0])
    assert (r.low, r.high) == (pytest.approx(1 - 12.7062047, abs=1e-6), pytest.approx(1 + 12.7062047, abs=1e-6))
    assert seed_difference([10.0, 10.1, 9.9], [0.0, 0.1, -0.1]).excludes_zero
    for bad in ([1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="at least 2 finite"):
            seed_difference(bad, [0.0, 1.0])


# ---------------------------------------------------------------------------------------------------------------
# Reply quality (issue 25): known answers by construction

def test_repeats_catches_a_repeated_three_gram_or_sentence():
    assert metrics.repeats("The acting is great. I think the acting is good.")  # "the acting is" twice
    assert metrics.repeats("Loved it. Great fun! Loved it.")  # a sentence twice (no 3-gram repeats)
    assert not metrics.repeats("You might like Heat (1995), a crime film with Al Pacino. It is tense.")
    assert not metrics.repeats("")
    assert metrics.repetition_rate(["a b c a b c", "x y z", "one two", "it is it is it is"]) == 0.5
    with pytest.raises(ValueError):
        metrics.repetition_rate([])


def test_stock_phrases_are_what_many_replies_share():
    replies = ["one of the best movies ever", "it is one of the best", "a tense heist thriller",
               "one of the best films", "funny and warm"]
    assert metrics.stock_phrases(replies, n=4, min_share=0.5) == {("one", "of", "the", "best")}
    assert metrics.stock_phrase_rate(replies, n=4, min_share=0.5) == 3 / 5
    assert metrics.stock_phrases(["same words here now"] * 1, n=4) == set()  # one text is no stock


def test_dialogue_use_needs_a_content_word_of_the_seeker_beyond_the_title():
    said = "I need something funny after a rough week"
    assert metrics.dialogue_use("Since you had a rough week, Paddington is pure comfort.", said)
    assert not metrics.dialogue_use("Paddington (2014) is a great movie.", said)  # function words only
    assert not metrics.dialogue_use("Funny Girl is great.", "any Funny Girl fans?", ignore=["Funny Girl"])


def test_plot_use_needs_two_plot_words_beyond_title_and_genres():
    plot = "A dumb limo driver and his dumber friend set out on a road trip to Aspen."
    assert metrics.plot_use("It follows a limo driver on a road trip.", plot)
    assert not metrics.plot_use("Dumb and Dumber is a great comedy, so funny!", plot, ignore=["Dumb and Dumber"])
    assert not metrics.plot_use("A road movie like no other.", plot)  # one plot word is chance
    assert not metrics.plot_use("The driver and his friend.", plot, ignore=["driver"])  # ignored words don't count
