"""Grounding checker: years and names in a reply that the prompt's knowledge does not contain."""
from __future__ import annotations

import pytest

from ecrs.data.kg import load_redial_kg
from ecrs.data.linking import build_redial_linker
from ecrs.inference.grounding import GroundingChecker, Violation, error_rate, years_in


@pytest.fixture(scope="module")
def kg():
    return load_redial_kg()


@pytest.fixture(scope="module")
def checker(kg):
    return GroundingChecker(build_redial_linker(kg))


KNOWLEDGE_TEXT = ("Titanic (1997)\nTitanic\nKate Winslet\nTitanic's director is James Cameron\n"
                  "You might like Titanic (1997).")


def test_years_in_ignores_decades_and_long_numbers():
    assert years_in("In 1997, and (2004) too") == {"1997", "2004"}
    assert years_in("the 1990s, the 1980's, 12345, 3/1997, 1997-98") == set()


def test_grounded_reply_has_no_violation(checker):
    know = checker.knowledge(KNOWLEDGE_TEXT)
    reply = "You might like Titanic (1997). Kate Winslet is wonderful and James Cameron made a drama to remember."
    assert checker.violations(reply, know) == []


def test_invented_year_and_person_are_flagged_with_their_sentence(checker, kg):
    know = checker.knowledge(KNOWLEDGE_TEXT)
    reply = ("You might like Titanic (1997). It came out in 1998. Leonardo DiCaprio is great. "
             "It is a romantic drama.")
    found = checker.violations(reply, know)
    assert Violation("year", "1998", 1) in found
    names = [(v.surface, v.sentence) for v in found if v.kind == "name"]
    assert names == [("Leonardo DiCaprio", 2)]
    assert kg.names[next(v for v in found if v.kind == "name").entity] == "Leonardo DiCaprio"


def test_other_movie_titles_are_names_but_genres_are_not(checker):
    know = checker.knowledge(KNOWLEDGE_TEXT)
    found = checker.violations("Titanic is a drama, better than The Shining. A great Horror fan pick!", know)
    assert [v.surface for v in found] == ["The Shining"]


def test_entity_ids_given_with_the_knowledge_count_as_grounded(checker, kg):
    dicaprio = kg.entity2id["<http://dbpedia.org/resource/Leonardo_DiCaprio>"]
    know = checker.knowledge(KNOWLEDGE_TEXT, [dicaprio])
    assert checker.violations("Leonardo DiCaprio shines.", know) == []


def test_repair_drops_offending_sentences_but_keeps_the_first(checker):
    know = checker.knowledge(KNOWLEDGE_TEXT)
    reply = "You might like Titanic (1997). It won in 2001. Kate Winslet is moving. Tom Hanks too."
    repaired, found = checker.repair(reply, know)
    assert repaired == "You might like Titanic (1997). Kate Winslet is moving."
    assert len(found) == 2
    assert checker.violations(repaired, know) == []
    assert checker.repair("Tom Hanks stars. It is good.", know, keep_first=True)[0] == "Tom Hanks stars. It is good."
    assert checker.repair("Tom Hanks stars. It is good.", know, keep_first=False)[0] == "It is good."


def test_error_rate_counts_replies_with_any_violation():
    v = Violation("year", "1999", 0)
    assert error_rate([[], [v, v], [], [v]]) == 0.5
    with pytest.raises(ValueError):
        error_rate([])
