"""Review knowledge (ECR_SPEC §5): cleaning rules on hand-made reviews, per-movie facts on a hand-made graph."""
from __future__ import annotations

from dataclasses import dataclass

from ecrs.data.kg import KnowledgeGraph
from ecrs.data.reviews import (
    MovieKnowledge,
    ReviewKB,
    clean_review,
    display_name,
    movie_triples,
    repeat_fraction,
    review_entities,
    split_sentences,
    truncate_sentences,
)


def test_repeat_fraction_counts_repeated_tokens():
    assert repeat_fraction("a b c d") == 0.0
    assert repeat_fraction("go go go go") == 0.75  # 1 unique of 4
    assert repeat_fraction("") == 0.0


def test_repetitive_review_is_dropped():
    text = "so good " * 30 + "watch it now please everyone"
    assert clean_review(text) == (None, "repetitive")


def test_short_review_is_dropped_after_meta_sentences_are_removed():
    text = "I give this movie 10/10. Great fun for all of us."
    assert clean_review(text) == (None, "short")


def test_html_breaks_and_sentences_about_the_review_or_score_are_removed():
    body = ("The acting is superb and the story moved me to tears every single time I watched it with "
            "my whole family on a rainy evening.")
    text = (f"This is my first review on this site.<br /><br />{body} My rating: ten out of ten. "
            "Rated 10 stars by me. I loved every minute of it.")
    cleaned, why = clean_review(text)
    assert why == "kept"
    assert cleaned == f"{body} I loved every minute of it."
    assert "<br" not in cleaned


def test_rated_r_is_not_a_score_sentence():
    text = "It is rated R for violence but the story of the two brothers is told with real love and care."
    assert clean_review(text)[0] == text


def test_split_sentences_keeps_closing_quotes_and_breaks_on_br():
    assert split_sentences('He said "Wow." Then it ended!<br />Next part here.') == [
        'He said "Wow."', "Then it ended!", "Next part here."]


def test_truncation_keeps_first_and_last_sentences_within_150_words():
    sentences = [f"s{i} " + " ".join(["w"] * 29) + "." for i in range(10)]  # 10 sentences of 30 words
    kept = truncate_sentences(sentences, 150)
    assert kept == [sentences[0], sentences[1], sentences[2], sentences[8], sentences[9]]  # 0, 9, 1, 8, 2
    assert sum(len(s.split()) for s in kept) <= 150


def test_truncation_fills_from_the_end_that_still_fits():
    sentences = ["a " * 50, "b " * 90, "c " * 20, "d " * 30]  # 50, 90, 20, 30 words
    kept = truncate_sentences([s.strip() for s in sentences], 150)
    assert [s[0] for s in kept] == ["a", "c", "d"]  # b (90) does not fit after a+d+c


def test_truncation_cuts_an_overlong_first_sentence():
    kept = truncate_sentences(["x " * 200 + ".", "y."], 150)
    assert len(kept) == 1 and len(kept[0].split()) == 150


def test_long_review_is_truncated_by_clean_review():
    text = " ".join(f"Sentence number {i} talks about the film with some words in it." for i in range(40))
    cleaned, why = clean_review(text, max_repeat=1.0)
    assert why == "kept" and len(cleaned.split()) <= 150
    assert cleaned.startswith("Sentence number 0 ") and cleaned.endswith("number 39 talks about the film with "
                                                                          "some words in it.")


def _graph() -> KnowledgeGraph:
    names = ["<http://dbpedia.org/resource/Film_(2000_film)>", "<http://dbpedia.org/resource/Alice_Star>",
             "<http://dbpedia.org/resource/Bob_Star>", "<http://dbpedia.org/resource/Carl_(director)>",
             "<http://dbpedia.org/resource/Comedy>", "<http://dbpedia.org/resource/Dana_Cinematographer>"]
    rels = ["<http://dbpedia.org/ontology/starring>", "<http://dbpedia.org/ontology/director>",
            "<http://dbpedia.org/ontology/genre>", "<http://dbpedia.org/ontology/cinematography>", "self_loop"]
    e2i = {n: i for i, n in enumerate(names)}
    r2i = {r: i for i, r in enumerate(rels)}
    triples = [(0, 0, 1), (0, 0, 2), (0, 1, 3), (0, 2, 4), (0, 3, 5), (0, 4, 0)]
    return KnowledgeGraph(entity2id=e2i, relation2id=r2i, item_ids=[0], triples=triples)


def test_movie_triples_keep_ecr_relations_director_first_then_billing():
    kg = _graph()
    assert movie_triples(kg, 0) == [("director", 3), ("star", 1), ("star", 2)]  # no genre, no cinematography
    assert movie_triples(kg, 0, billing=["Bob Star", "Alice Star"]) == [("director", 3), ("star", 2), ("star", 1)]
    assert display_name(kg.names[3]) == "Carl"


@dataclass
class _M:
    entity_id: int


class _FakeLinker:
    def __init__(self, table: dict[str, int]):
        self.table = table

    def link(self, text: str):
        return [_M(e) for word, e in self.table.items() for _ in range(text.count(word))]


def test_review_entities_need_two_mentions_and_exclude_the_movie():
    kg = _graph()
    linker = _FakeLinker({"Alice": 1, "Bob": 2, "Film": 0, "Carl": 3})
    texts = ["Alice was great. Film!", "Alice again<br />and Bob. Film Film", "Carl Carl Carl"]
    assert review_entities(texts, linker, {0}, kg) == [(3, "Carl"), (1, "Alice Star")]


def test_kb_json_round_trip():
    m = MovieKnowledge(entity=0, title="Film (2000)", name="Film", triples=[("director", 3, "Carl")],
                       review_entities=[(1, "Alice Star")], reviews=["Great."], genres=["drama"],
                       plot="A film about a film.")
    kb = ReviewKB(movies={0: m}, stats={"reviews_kept": 1})
    again = ReviewKB.from_json(kb.to_json())
    assert again.movies[0] == m and again.with_reviews() == [m]
