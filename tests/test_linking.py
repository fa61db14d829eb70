"""Entity linking on a 26-entity graph whose right answers are known by construction, plus one bundled-graph check."""
from __future__ import annotations

import random

import pytest

from ecrs.data.kg import KnowledgeGraph
from ecrs.data.linking import (
    Alias,
    EntityLinker,
    Mention,
    WordStats,
    kg_aliases,
    normalize,
    person_shorthands,
    split_title,
    word_stats,
)

# (DBpedia resource, is a movie)
ENTITIES = [
    ("Titanic_(1997_film)", True),  # 0
    ("Titanic_(1953_film)", True),  # 1
    ("Up_(2009_film)", True),  # 2
    ("It_(2017_film)", True),  # 3
    ("Her_(film)", True),  # 4
    ("Step_Brothers_(film)", True),  # 5
    ("Star_Wars_(film)", True),  # 6
    ("Star_Wars:_The_Force_Awakens", True),  # 7
    ("Halloween_(1978_film)", True),  # 8
    ("Halloween_(2007_film)", True),  # 9
    ("The_Game_(1997_film)", True),  # 10
    ("Am%C3%A9lie", True),  # 11  "Amélie"
    ("The_Matrix", True),  # 12
    ("Will_Ferrell", False),  # 13
    ("Leonardo_DiCaprio", False),  # 14
    ("James_Cameron", False),  # 15
    ("Kate_Winslet", False),  # 16
    ("Pete_Docter", False),  # 17
    ("Horror_film", False),  # 18
    ("Comedy_film", False),  # 19
    ("Science_fiction_film", False),  # 20
    ("Romance_film", False),  # 21
    ("Animation", False),  # 22
    ("Drama_film", False),  # 23
    ("United_States", False),  # 24
    ("Paramount_Pictures", False),  # 25
]
STARRING, DIRECTOR, GENRE, COUNTRY = 0, 1, 2, 3
TRIPLES = [
    (0, STARRING, 14), (0, STARRING, 16), (0, DIRECTOR, 15), (0, GENRE, 21), (0, GENRE, 23), (0, COUNTRY, 24),
    (2, DIRECTOR, 17), (2, GENRE, 22), (3, GENRE, 18), (5, STARRING, 13), (5, GENRE, 19), (6, GENRE, 20),
    (7, GENRE, 20), (8, GENRE, 18), (9, GENRE, 18), (10, GENRE, 23), (12, GENRE, 20), (12, COUNTRY, 24),
]
POPULARITY = {0: 50, 1: 1, 2: 40, 3: 60, 4: 10, 5: 20, 6: 30, 7: 25, 8: 3, 9: 9, 10: 8, 11: 6, 12: 40}
REDIAL_IDS = {"111": 0, "222": 5}
TITANIC_97, TITANIC_53, UP, IT, HER, STEP_BROTHERS, STAR_WARS, FORCE_AWAKENS, HALLOWEEN_78, HALLOWEEN_07 = range(10)
THE_GAME, AMELIE, MATRIX, FERRELL = 10, 11, 12, 13
HORROR, COMEDY, SCIFI, ANIMATION = 18, 19, 20, 22


@pytest.fixture(scope="module")
def kg() -> KnowledgeGraph:
    e2i = {f"<http://dbpedia.org/resource/{name}>": i for i, (name, _) in enumerate(ENTITIES)}
    r2i = {"<http://dbpedia.org/ontology/starring>": STARRING, "<http://dbpedia.org/ontology/director>": DIRECTOR,
           "<http://dbpedia.org/ontology/genre>": GENRE, "<http://dbpedia.org/ontology/country>": COUNTRY,
           "self_loop": 4}
    items = [i for i, (_, movie) in enumerate(ENTITIES) if movie]
    return KnowledgeGraph(entity2id=e2i, relation2id=r2i, item_ids=items, triples=TRIPLES)


@pytest.fixture(scope="module")
def linker(kg) -> EntityLinker:
    # "game" is an ordinary word (as `word_stats` would learn from chat text), so "The Game" needs capitals.
    return EntityLinker.from_kg(kg, {STEP_BROTHERS: ["Step Brothers (2008)"]}, popularity=POPULARITY,
                                unlinked_titles={"Star Wars: The Last Jedi (2017)": 100}, redial_ids=REDIAL_IDS,
                                words=WordStats(common=frozenset({"game", "early", "fun", "dog"})))


def ids(linker: EntityLinker, text: str) -> list[int]:
    return [m.entity_id for m in linker.link(text)]


def movies(linker: EntityLinker, text: str) -> list[int]:
    return [m.entity_id for m in linker.link(text) if m.is_movie]


# ---------------------------------------------------------------- movies by title

def test_title_without_year_takes_the_more_mentioned_release(linker):
    assert movies(linker, "I loved Titanic") == [TITANIC_97]
    assert movies(linker, "Halloween was scary") == [HALLOWEEN_07]  # 9 mentions beat 3


@pytest.mark.parametrize("text, expected", [
    ("Titanic (1997)", TITANIC_97), ("Titanic (1953)", TITANIC_53), ("titanic 1953", TITANIC_53),
    ("Halloween (1978)", HALLOWEEN_78), ("Halloween 1979", HALLOWEEN_78),  # one year off: release vs ReDial year
])
def test_a_year_after_the_title_picks_the_release(linker, text, expected):
    [m] = linker.link(f"have you seen {text} ?")
    assert (m.entity_id, m.surface, m.is_movie) == (expected, text, True)


def test_a_year_matching_no_release_links_nothing(linker):
    assert movies(linker, "Titanic (2012) is not in the graph") == []


def test_redial_title_table_is_used(linker):
    [m] = linker.link("Step Brothers (2008) with Will Ferrell")[:1]
    assert (m.entity_id, m.surface) == (STEP_BROTHERS, "Step Brothers (2008)")


def test_longest_match_wins(linker):
    assert movies(linker, "Star Wars: The Force Awakens was fine") == [FORCE_AWAKENS]
    assert movies(linker, "star wars the force awakens") == [FORCE_AWAKENS]
    assert movies(linker, "the original Star Wars") == [STAR_WARS]


def test_a_known_title_outside_the_graph_claims_its_span(linker):
    # "Star Wars: The Last Jedi" is a ReDial title with no graph entity: it must not become "Star Wars".
    assert movies(linker, "Star Wars: The Last Jedi was long") == []


def test_derived_forms_accents_and_case(linker):
    assert movies(linker, "matrix") == [MATRIX]  # article dropped
    assert movies(linker, "I loved amelie and Amélie") == [AMELIE, AMELIE]


def test_duplicates_are_kept_in_text_order(linker):
    found = linker.link("Titanic, then Up, then Titanic again")
    assert [m.entity_id for m in found] == [TITANIC_97, UP, TITANIC_97]
    assert [m.start for m in found] == sorted(m.start for m in found)


# ---------------------------------------------------------------- common-word titles

@pytest.mark.parametrize("text", [
    "it was up to her to pick the game",
    "I got up early. It was fun and her dog came too",
    "It sounds good. Her brother liked it",
    "I LOVED IT AND HER",
])
def test_common_word_titles_are_not_linked_in_running_text(linker, text):
    assert movies(linker, text) == []


@pytest.mark.parametrize("text, expected", [
    ("Have you seen Up?", UP), ("I watched It last night", IT), ("the new It was scary", IT),
    ('my favourite is "her"', HER), ("Up (2009)", UP), ("I loved The Game, very twisty", THE_GAME),
])
def test_common_word_titles_link_with_evidence(linker, text, expected):
    assert movies(linker, text) == [expected]


# ---------------------------------------------------------------- people, genres, @ids

def test_person_names(linker):
    [m] = linker.link("anything with Will Ferrell's humour")
    assert (m.entity_id, m.surface, m.is_movie) == (FERRELL, "Will Ferrell", False)
    assert ids(linker, "i like will ferrell") == [FERRELL]


@pytest.mark.parametrize("text, expected", [
    ("horror", HORROR), ("horror movies", HORROR), ("scary movies", HORROR), ("comedies", COMEDY),
    ("a comedy flick", COMEDY), ("sci-fi", SCIFI), ("scifi", SCIFI), ("science fiction films", SCIFI),
    ("animated movies", ANIMATION),
])
def test_genre_words_and_plurals(linker, text, expected):
    assert ids(linker, f"I am into {text} lately") == [expected]
    assert expected in linker.genre_ids


def test_redial_ids(linker):
    found = linker.link("try @111 or @999, and @222!")
    assert [(m.entity_id, m.surface, m.is_movie) for m in found] == [(TITANIC_97, "@111", True),
                                                                     (STEP_BROTHERS, "@222", True)]


def test_spans_match_the_text(linker):
    text = "İİ Have you seen Titanic (1997) or Will Ferrell’s Step Brothers? Horror fans: Up!"
    found = linker.link(text)
    assert [m.entity_id for m in found] == [TITANIC_97, FERRELL, STEP_BROTHERS, HORROR, UP]
    for m in found:
        assert text[m.start:m.end] == m.surface


# ---------------------------------------------------------------- odd input

def test_empty_and_blank(linker):
    assert linker.link("") == []
    assert linker.link("   \n\t ") == []


def test_one_megabyte_of_text(linker):
    text = ("I loved Titanic and it was up to her. " * 30_000)[:1_000_000]
    found = linker.link(text)
    assert isinstance(found, list) and len(found) >= 20_000
    assert {m.entity_id for m in found} == {TITANIC_97}


def test_garbage_bytes(linker):
    rng = random.Random(0)
    for _ in range(20):
        text = bytes(rng.randrange(256) for _ in range(500)).decode("utf-8", errors="replace")
        found = linker.link(text)
        assert all(isinstance(m, Mention) and text[m.start:m.end] == m.surface for m in found)


def test_not_a_string_is_a_type_error(linker):
    with pytest.raises(TypeError):
        linker.link(b"Titanic")  # type: ignore[arg-type]


def test_a_linker_without_aliases_still_reads_ids():
    linker = EntityLinker([], movie_entities={7}, redial_ids={"1": 7})
    assert linker.link("@1 and Titanic") == [Mention(7, 0, 2, "@1", True)]


# ---------------------------------------------------------------- alias tables

def test_alias_order_does_not_change_answers(kg):
    rows = kg_aliases(kg, popularity=POPULARITY)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    a = EntityLinker(rows, movie_entities=kg.item_set)
    b = EntityLinker(shuffled, movie_entities=kg.item_set)
    text = "Titanic, Halloween, Will Ferrell, horror, Star Wars: The Force Awakens, The Game"
    assert a.link(text) == b.link(text)


def test_alias_helpers():
    assert split_title("Titanic (1997 film)") == ("Titanic", 1997)
    assert split_title("Police Academy  (1984)") == ("Police Academy", 1984)
    assert split_title("Blank Check (film)") == ("Blank Check", None)
    assert split_title("(500) Days of Summer") == ("(500) Days of Summer", None)
    assert normalize("Ocean's Eleven & Amélie") == "ocean s eleven and amelie"
    linker = EntityLinker([Alias("Toy Story", 1, "movie")], movie_entities={1})
    assert [m.entity_id for m in linker.link("toy story")] == [1]


def test_word_stats_on_a_hand_made_corpus():
    texts = ["We stayed home all day."] * 5 + ["I love Jumanji so much."] * 5 + ["Great, thanks!"] * 3
    stats = word_stats(texts)
    assert "home" in stats.common and "jumanji" not in stats.common  # lower-case vs capitalised mid-sentence
    assert "great" in stats.starters and "jumanji" not in stats.starters
    assert WordStats().common == WordStats().starters  # defaults: the stopwords only


# ---------------------------------------------------------------- chat shorthands: surnames and typos

@pytest.fixture(scope="module")
def chat_linker(kg) -> EntityLinker:
    surnames, names = person_shorthands(kg, common=frozenset({"cameron", "will"}), min_movies=1)
    # surnames and first names only one person has; "cameron" and "will" are ordinary words
    assert sorted(a.text for a in surnames) == ["Dicaprio", "Docter", "Ferrell", "James", "Kate", "Leo", "Leonardo",
                                               "Pete", "Winslet"]  # "Leo": a nickname (`NICKNAMES`)
    return EntityLinker(kg_aliases(kg) + surnames, movie_entities=kg.item_set, fuzzy_names=names)


@pytest.mark.parametrize("text, expected", [
    ("anything with DiCaprio", [14]),  # a surname in Title Case
    ("anything with dicaprio", [14]),  # lower-case: after a word that says a person is meant
    ("a docter movie", [17]),  # or before a film noun
    ("dicaprio is great", [14]),  # or opening a sentence before a verb
    ("i think dicaprio would work", []),  # else, as any one-word name, it needs capitals
    ("Cameron movies", []),  # an ordinary word is no surname alias
    ("something with leonardo dicaprioo", [14]),  # one typo (two allowed past 12 letters)
    ("a comedy with will ferrel", [COMEDY, FERRELL]),  # a function-word first name may stand, the surname errs
    ("a comedy with bill ferrell", [COMEDY]),  # first letters must agree
    ("kate winslett and pete doctor", [16, 17]),
])
def test_chat_linker_reads_surnames_and_typos(chat_linker, text, expected):
    assert ids(chat_linker, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("dicaprio comedies please", [14, COMEDY]),  # a lower-case surname before a genre word names the person
    ("dicaprio but nothing sad", [14]),  # or opening the message before "but"
])
def test_a_lower_case_surname_before_a_genre_or_but(chat_linker, text, expected):
    assert ids(chat_linker, text) == expected


def test_a_one_word_title_before_night_or_weekend_is_a_time_in_chat(kg):
    chat = EntityLinker(kg_aliases(kg), movie_entities=kg.item_set, lowercase_title_cues=True)
    # "a movie for halloween night": when, not which film; the prepared datasets keep their links
    assert ids(chat, "a movie for Halloween night") == [] and ids(chat, "I loved Halloween") == [HALLOWEEN_78]
    assert ids(EntityLinker(kg_aliases(kg), movie_entities=kg.item_set), "Halloween night") == [HALLOWEEN_78]


def test_a_one_word_title_of_function_words_closing_a_seen_list_links(kg):
    chat = EntityLinker(kg_aliases(kg), movie_entities=kg.item_set, lowercase_title_cues=True)
    assert ids(chat, "ive seen titanic and up") == [TITANIC_97, UP]
    assert ids(chat, "seen titanic and up close") == [TITANIC_97]  # "up" goes on as a word
    assert ids(chat, "ive seen titanic, the game and it") == [TITANIC_97, THE_GAME]  # a comma list goes on


def test_a_slip_in_a_long_surname_links_where_a_person_is_meant(kg):
    chat = EntityLinker(kg_aliases(kg), movie_entities=kg.item_set, fuzzy_surnames={"dicaprio": 14, "winslet": 16})
    assert ids(chat, "something with dicapro") == [14] and ids(chat, "dicapro movies") == [14]  # a cue around it
    assert ids(chat, "i think dicapro is good") == []  # no cue: a stray word
    assert ids(chat, "with wenslet") == [16] and ids(chat, "with vinslet") == []  # first letters must agree


def test_the_prepared_data_linker_has_no_shorthands(linker):
    assert ids(linker, "anything with DiCaprio") == [] and ids(linker, "will ferrel") == []


# ---------------------------------------------------------------- the bundled graph

def test_bundled_graph_links_movie_person_and_genre():
    from ecrs.data.kg import load_redial_kg
    from ecrs.data.linking import build_redial_linker

    kg = load_redial_kg()
    linker = build_redial_linker(kg)
    text = "I loved Titanic and anything with Will Ferrell, mostly horror"
    found = linker.link(text)
    assert [(kg.names[m.entity_id], m.surface, m.is_movie) for m in found] == [
        ("Titanic (1997 film)", "Titanic", True),
        ("Will Ferrell", "Will Ferrell", False),
        ("Horror fiction", "horror", False),
    ]
    assert found[2].entity_id in linker.genre_ids
    assert [kg.names[m.entity_id] for m in linker.link("Have you seen @111776?")] == ["Super Troopers"]
    chat = build_redial_linker(kg, chat=True)
    assert [kg.names[m.entity_id] for m in chat.link("Tarantino or Jackson, with jim carey")] == [
        "Quentin Tarantino", "Jim Carrey"]  # "Jackson": Samuel L. and Peter both have many movies
    assert [kg.names[m.entity_id] for m in chat.link("anything with Will Farrell")] == ["Will Ferrell"]  # not Colin
    # a much-mentioned title one typo away (a swap of two letters is one), not the shorter title inside it
    for text, name in [("anything like inceptoin?", "Inception"), ("seen the notebok", "The Notebook"),
                       ("something like the dark knigth", "The Dark Knight (film)"), ("titanc", "Titanic (1997 film)")]:
        assert [kg.names[m.entity_id] for m in chat.link(text)] == [name], text
    for text in ["he clashes with mobsters in a resort town", "i want a comdy"]:
        assert not any(m.is_movie for m in chat.link(text)), text  # real words are no typos of a title's word
    assert [m.surface for m in linker.link("anything like inceptoin?")] == []  # the prepared data's linker: exact
    # a title of ordinary words in lower case, after a strong cue only; never words that point back
    assert [kg.names[m.entity_id] for m in chat.link("anything similar to get out?")] == ["Get Out"]
    assert [kg.names[m.entity_id] for m in chat.link("never saw brazil")] == ["Brazil (1985 film)"]
    assert chat.link("get out of here") == [] and chat.link("I haven't seen the other two") == []
    assert linker.link("anything similar to get out?") == []  # the prepared-data linker keeps its inputs
