"""Live entity linking (ECR_SPEC §3): free text -> knowledge-graph entity ids, in well under a millisecond a turn.

ReDial marks movies as `@<id>`; everything else a user types ("Titanic", "Will Ferrell", "horror comedies") has
to be found in the text against the graph's names. The published ECR pipeline did that offline and never released
it; this module does it live.

How a match is found:
  1. The text is lower-cased (offsets kept) and cut into word tokens: accents folded, apostrophes split ("Ferrell's"
     -> "ferrell s"), "&" read as "and", a ReDial `@123` is one barrier token (linked through the id map).
  2. One Aho-Corasick automaton (pyahocorasick) holds every alias as " tok tok ", so matches fall on word
     boundaries by construction; all overlapping matches come out of a single pass.
  3. Each match is judged. A year right after a title ("Titanic (1997)", "titanic 1997") picks the release.
     A *risky* alias (its content words are all ordinary words: "Up", "Her", "The Game", "Home Alone") needs
     evidence that a title is meant: quotes or a year; Title Case away from a sentence start; for "It"-like
     titles Title Case that closes a clause ("seen It?") or follows a cue word ("the new It").
  4. Kept matches: longest first, then leftmost. A ReDial title that is not in the graph still claims its span
     ("The Last Jedi" does not become "Star Wars"); it just yields no mention.
  5. Candidates of one alias: exact title > genre word (unless capitals or a year say title) > person or other
     name > derived title ("Matrix" for "The Matrix"); among movies, the one mentioned most in ReDial train.

`build_redial_linker()` assembles the alias tables from the bundled files (ReDial titles, train mention counts and
word statistics, the graph's names, a genre lexicon): about 2.5 s of CPU, done once per process. The live chat's
linker (`chat=True`) also knows what people type but ReDial's prepared data never needed: the surname of a
well-known person ("Tarantino") and a full name with one typo ("jim carey", matched with RapidFuzz).
"""
from __future__ import annotations

import csv
import re
import unicodedata
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ahocorasick
from rapidfuzz import process
from rapidfuzz.distance import OSA, Levenshtein

from ecrs.data.bundle import bundled, iter_jsonl, open_text, read_json
from ecrs.data.catalogue import FRANCHISES
from ecrs.data.kg import TITLE_QUALIFIER as _QUALIFIER
from ecrs.data.kg import KnowledgeGraph, load_redial_kg, redial_movie_entities, split_title

__all__ = [
    "GENRE_LEXICON",
    "STOPWORDS",
    "Alias",
    "EntityLinker",
    "Mention",
    "RedialAliases",
    "WordStats",
    "build_redial_linker",
    "kg_aliases",
    "normalize",
    "redial_aliases",
    "split_title",
    "word_stats",
]

Kind = Literal["movie", "genre", "entity"]


@dataclass(frozen=True, slots=True)
class Mention:
    """One linked span: `text[start:end] == surface`."""

    entity_id: int
    start: int
    end: int
    surface: str
    is_movie: bool  # the entity is a ranking candidate (`kg.item_ids`)


@dataclass(frozen=True, slots=True)
class Alias:
    """One row of the alias table: a surface form and what it names.

    `entity_id=None` is a known title with no graph entity: it claims its span but links nothing.
    `variant` marks derived forms (article dropped, subtitle cut, hyphen joined) that rank below exact titles; on a
    person, a chat shorthand (a surname, `person_shorthands`).
    """

    text: str
    entity_id: int | None
    kind: Kind
    year: int | None = None
    popularity: float = 0.0
    variant: bool = False


# Function words: a title made only of these and one ordinary word ("Up", "Her", "The Game") is risky.
STOPWORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "did", "do", "does", "doing", "don", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "let", "me", "more",
    "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other",
    "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "s",
    "t", "ll", "re", "ve", "d", "m", "go", "get", "got", "one", "two", "yes", "oh", "ok", "okay", "hi",
    "hey", "well", "like", "really", "much", "many", "also", "still", "even", "ever", "never", "always",
    "thing", "things", "something", "anything", "nothing", "way", "lot", "good", "great",
])

# Title words that stay lower-case inside Title Case ("The Lord of the Rings").
_MINOR = frozenset([
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of", "on", "or",
    "over", "the", "to", "up", "vs", "with", "s", "t",
])

# Genre words -> graph entity names to try; the best-connected existing one is linked (see `_resolve_genres`).
# Each key is also linked in its plural and with "movie(s)"/"film(s)"/"flick(s)" after it.
GENRE_LEXICON: dict[str, tuple[str, ...]] = {
    "horror": ("Horror film", "Horror fiction", "Horror films"),
    "scary": ("Horror film", "Horror fiction"),
    "comedy": ("Comedy film", "Comedy", "Comedy films"),
    "funny": ("Comedy film", "Comedy"),
    "action": ("Action film", "Action films", "Action fiction"),
    "sci fi": ("Science fiction film", "Science fiction", "Sci-fi"),
    "scifi": ("Science fiction film", "Science fiction", "Sci-fi"),
    "science fiction": ("Science fiction film", "Science fiction", "Sci-fi"),
    "thriller": ("Thriller film", "Thriller (genre)", "Thriller fiction", "Thrillers"),
    "suspense": ("Thriller film", "Thriller (genre)"),
    "drama": ("Drama film", "Drama (film and television)", "Drama", "Drama (genre)"),
    "romance": ("Romance film", "Romantic fiction", "Romance (love)"),
    "romantic": ("Romance film", "Romantic fiction"),
    "romantic comedy": ("Romantic comedy",),
    "rom com": ("Romantic comedy",),
    "romcom": ("Romantic comedy",),
    "documentary": ("Documentary", "Documentary film"),
    "animation": ("Animation", "Animated film"),
    "animated": ("Animation", "Animated film"),
    "cartoon": ("Animation", "Animated film"),
    "anime": ("Anime", "Animation"),
    "musical": ("Musical film", "Musical theatre"),
    "western": ("Western (genre)", "Western fiction", "Western (fiction)"),
    "fantasy": ("Fantasy film", "Fantasy", "Fantasy (genre)"),
    "mystery": ("Mystery film", "Mystery fiction"),
    "crime": ("Crime film", "Crime fiction"),
    "adventure": ("Adventure film", "Adventure fiction"),
    "superhero": ("Superhero film", "Superhero fiction"),
    "family": ("Family film",),
    "kids": ("Children's film", "Family film"),
    "children s": ("Children's film", "Family film"),
    "war": ("War film",),
    "biopic": ("Biographical film",),
    "biographical": ("Biographical film",),
    "teen": ("Teen film",),
    "martial arts": ("Martial arts film",),
    "sports": ("Sport film", "Sports film"),
    "black comedy": ("Black comedy",),
    "dark comedy": ("Black comedy",),
    "comedy drama": ("Comedy-drama",),
    "mockumentary": ("Mockumentary",),
    "satire": ("Satire",),
    "slasher": ("Slasher film",),
    "disaster": ("Disaster film",),
    "spy": ("Spy film",),
    "noir": ("Film noir",),
    "film noir": ("Film noir",),
}
# Words that are a genre only when followed by movie/film ("my family", "the war", "so funny").
_GENRE_NEEDS_NOUN = frozenset({"family", "kids", "children s", "war", "funny", "scary", "teen", "sports", "spy",
                               "disaster"})
_GENRE_NOUNS = ("movie", "movies", "film", "films", "flick", "flicks", "genre", "ones", "stuff", "show", "shows")
_GENRE_PLURALS = {"comedy": "comedies", "documentary": "documentaries", "mystery": "mysteries",
                  "superhero": "superheroes", "horror": "horrors", "thriller": "thrillers", "drama": "dramas", "romance": "romances",
                  "musical": "musicals", "western": "westerns", "cartoon": "cartoons", "biopic": "biopics",
                  "mockumentary": "mockumentaries", "slasher": "slashers", "comedy drama": "comedy dramas",
                  "rom com": "rom coms", "romcom": "romcoms", "romantic comedy": "romantic comedies",
                  "black comedy": "black comedies", "dark comedy": "dark comedies"}
_GENRE_EXTRA = {"action": ("action packed",), "romantic": ("romantic drama", "romantic dramas")}

# one-word genres after a lower-case surname say it names a person: "nolan thriller", "scorsese crime"
_GENRE_WORDS = frozenset(w for w in [*GENRE_LEXICON, *_GENRE_PLURALS.values()] if " " not in w)
_TOKEN = re.compile(r"@\d+|[^\W_]+|&")
_WORD = re.compile(r"[^\W_]+")
# Word statistics run over ~3 MB of chat: ASCII classes are several times faster than Unicode ones there.
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_CAPITAL_RUN = re.compile(r"\b[A-Z][A-Za-z0-9'’]*(?:[ \t]+(?:(?:of|the|and|in|a|on|to)[ \t]+)*[A-Z][A-Za-z0-9'’]*)+")
_YEAR_AFTER = re.compile(r"[ \t]*,?[ \t]*[(\[]?[ \t]*((?:18|19|20)\d\d)(?:[ \t]*[)\]])?(?!\w)")
_SENTENCE_FIRST = re.compile(r"(?:^|[.!?]|@\d+)[^A-Za-z0-9\n]*([A-Za-z0-9]+)", re.MULTILINE)
_REDIAL_ID = re.compile(r"@(\d+)")
_ARTICLE = re.compile(r"^(?:the|a|an) (?=\w+ \w)")  # dropped from titles of three words or more
_SENTENCE_END = frozenset(".!?…\n")
# Words after which a capitalised "It" / "Her" / "Up" is a title, not a pronoun starting a run-on sentence.
_TITLE_CUES = frozenset([
    "see", "seen", "saw", "watch", "watched", "watching", "like", "liked", "love", "loved", "enjoyed",
    "enjoy", "about", "recommend", "new", "original", "remake", "than", "try", "hated", "called",
])
# Words around a lower-case surname that say a person is meant ("with pacino", "nolan movies").
# Words before a lower-case surname shorthand that say a person is meant ("no stallone", "how about tarantino");
# shorthands are unusual words by construction (`person_shorthands`), so ordinary cues are safe
_PERSON_CUES = frozenset(["with", "by", "starring", "directed", "director", "actor", "actress", "no", "not",
                          "without", "except", "minus", "about", "and", "or", "love", "loved", "like", "hate",
                          "hated", "than", "from", "some", "more", "any", "also", "w", "featuring", "feat", "ft",
                          "stand", "of", "into", "dislike", "hates", "loves", "likes", "adore", "either", "both",
                          "neither"])
_OPENERS_WORDS = frozenset(["actually", "ok", "okay", "well", "hmm", "honestly", "oh", "but", "also", "yeah", "nah",
                            "tbh", "ngl", "though"])  # "actually stallone is fine": still opening the clause
# Words before a name that say a person, not a film of that name, is meant: "something with keanu", "w/ the rock"
_STAR_CUES = frozenset(["with", "w", "starring", "featuring", "feat", "ft"])
# What people call some stars (chat shorthands, so lower case needs a cue as a surname does: `_judge`)
NICKNAMES = {"the rock": "Dwayne Johnson", "leo": "Leonardo DiCaprio", "sly": "Sylvester Stallone",
             "arnie": "Arnold Schwarzenegger", "arnold": "Arnold Schwarzenegger", "rdj": "Robert Downey Jr.",
             "scarjo": "Scarlett Johansson", "jlaw": "Jennifer Lawrence", "j law": "Jennifer Lawrence",
             "jlo": "Jennifer Lopez", "j lo": "Jennifer Lopez", "nic cage": "Nicolas Cage",
             "sam jackson": "Samuel L. Jackson", "coen bros": "Coen brothers", "the coens": "Coen brothers",
             "coens": "Coen brothers", "wachowskis": "The Wachowskis", "russo brothers": "Russo brothers"}
_SERIES_PARTS = frozenset(["s", "one", "ones", "era", "years", "stuff"])  # "tarantino's", "the nolan ones", "the craig era"
_NAME_ALONE = re.compile(r"[ \t]*(?:maybe|please|pls|perhaps|then|films?|movies?|stuff)?[ \t]*[?!.…]*[ \t]*$", re.I)
_PARTICLES = frozenset(["de", "di", "da", "del", "della", "van", "von", "der", "le", "la", "du", "st", "st."])
_SLIP_MIN_LETTERS = 6  # shorter surnames are too near ordinary words for a one-letter slip to say a name
_PRONOUNS = frozenset(["it", "her", "him", "us", "them", "this", "that", "me", "you", "she", "he"])  # never a list's title
_LIST_TAIL = frozenset(["like", "too", "already", "again", "both", "as", "lol", "multiple", "many", "so"])
_TIME_NOUNS = frozenset(["night", "nite", "nights", "evening", "eve", "weekend", "morning", "afternoon", "party"])
_FILM_NOUNS = frozenset(["movie", "movies", "film", "films", "flick", "flicks"])
# what follows a person opening a sentence: "tarantino is overrated", "spielberg never misses"
_PERSON_AFTER = frozenset(["is", "was", "gets", "has", "always", "never", "sucks", "rocks", "just", "makes", "made",
                           "directed", "does", "did", "can", "cant", "isnt", "wasnt", "doesnt", "annoys", "bores",
                           "but", "and", "or", "with"])  # "tarantino but no samuel l jackson", "spielberg and hanks"
_SEEN_CUES = frozenset(["seen", "watched", "saw", "rewatched"])
# Words that point back at something said ("seen the other two", "the one from 1979"): never a lower-case title
_POINTING = frozenset(["the", "a", "an", "one", "ones", "other", "others", "same", "rest", "first", "last", "next",
                       "kid", "kids", "two", "three"])
_MOVIE_WORDS = _FILM_NOUNS | {"something", "anything", "one", "ones", "stuff", "similar", "more", "else", "better"}
_CLAUSE_END = re.compile(r"[ \t]*(?:$|[?!.,;:)\]\n…])")
_OPENERS = frozenset(" \t\r\"'“‘(*[-–—")
_QUOTES = frozenset("\"'“”‘’*«»")
_SHORT_FORM_MIN_MENTIONS = 5
_PERSON_OVER_FILM_MENTIONS = 10  # a film named less often loses its name to a star after "not", "loved" ("keanu")
RISKY_MIN_MENTIONS = 5  # ReDial train mentions below which a risky title needs more evidence
_TRAILING_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_FIRST_WORD_MIN_MENTIONS = 10  # a title named this often may take its first word from a rarely named one-word title
UNIQUE_WORD_MIN_MENTIONS = 5  # a title this often named links by its one unusual word ("totoro"; chat only)
# titles as people type them, where no rule reaches: digits for letters, initials (chat only)
TITLE_STYLINGS = {"Se7en": "Seven (1995)", "E.T.": "E.T. the Extra-Terrestrial (1982)", "T2": "Terminator 2: Judgment Day (1991)"}
FUZZY_TITLE_MIN_MENTIONS = 20  # a title this often named in ReDial train links misspelled too (chat linker only)
# Item names whose qualifier says "a film" (or a show); the graph's items also hold a few novels, songs, a volcano.
_FILM_QUALIFIER = re.compile(r"film|movie|series|serial|franchise|\btv\b|season|special|programme|^\d{4}$",
                             re.IGNORECASE)
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "x": "10"}


def _fold(token: str) -> str:
    """Strip accents ("amélie" -> "amelie"); keep the token if nothing alphanumeric is left."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", token) if c.isalnum() and not unicodedata.combining(c))
    return folded or token


def _lower(text: str) -> str:
    """Lower-case without changing the length (offsets stay valid): "İ".lower() is two characters."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    """(normalized token, start, end) in text order; `@123` becomes the barrier token "@"."""
    out: list[tuple[str, int, int]] = []
    for m in _TOKEN.finditer(_lower(text)):
        tok = m.group()
        if tok[0] == "@":
            tok = "@"
        elif tok == "&":
            tok = "and"
        elif not tok.isascii():
            tok = _fold(tok)
        out.append((tok, m.start(), m.end()))
    return out


def normalize(text: str) -> str:
    """The matching form of a phrase: "Ocean's Eleven" -> "ocean s eleven", "Amélie & Co" -> "amelie and co"."""
    if text.isascii() and "&" not in text and "@" not in text:  # fast path, same result
        return " ".join(_WORD.findall(text.lower()))
    return " ".join(t for t, _, _ in _tokenize(text))


@dataclass(slots=True)
class _Key:
    """Everything the automaton knows about one normalized alias."""

    n_tokens: int
    n_content: int  # tokens that are not function words: breaks ties between equally long matches
    movies: list[Alias]  # best first: exact before variant, then popularity, then entity id
    genre: int | None
    entities: list[Alias]  # best first: popularity (graph degree), then entity id
    movie_need: int  # evidence a movie reading needs, levels as in `_judge`: 0 none ... 3 a year or quotes
    entity_need: int
    shorthand: bool = False  # its names are chat shorthands only (a surname): lower case needs a cue (`_judge`)


class EntityLinker:
    """Finds graph entities in free text. Build with `from_kg` or `build_redial_linker`; call `link(text)`."""

    def __init__(self, aliases: Iterable[Alias], *, movie_entities: Collection[int],
                 redial_ids: Mapping[str, int] | None = None, words: WordStats | None = None,
                 risky_min_popularity: float = 0.0, fuzzy_names: Mapping[str, int] | None = None,
                 fuzzy_titles: Mapping[str, int] | None = None, ordinary_words: Collection[str] = (),
                 lowercase_title_cues: bool = False, fuzzy_surnames: Mapping[str, int] | None = None):
        self.risky_min_popularity = risky_min_popularity
        # a title of ordinary words typed in lower case links after "seen" / "similar to" ("seen get out", `_judge`)
        self.lowercase_title_cues = lowercase_title_cues
        # normalized two-word name -> entity: an unlinked word pair one edit away links to it (`_fuzzy`)
        self.fuzzy_names = dict(fuzzy_names or {})
        self._fuzzy_choices = list(self.fuzzy_names)
        # lower-case surname -> person: a one-letter slip of a long surname after a person cue links (`_slipped`)
        self.fuzzy_surnames = dict(fuzzy_surnames or {})
        self._surname_choices = list(self.fuzzy_surnames)
        # normalized title of a much-mentioned movie -> entity, by word count: a misspelled title links (`_misspelled`)
        self.fuzzy_titles: dict[int, dict[str, int]] = defaultdict(dict)
        for title, eid in (fuzzy_titles or {}).items():
            self.fuzzy_titles[len(title.split())][title] = eid
        self.ordinary_words = frozenset(ordinary_words) | STOPWORDS  # real words are no typos of a title's word
        self.movie_entities = frozenset(movie_entities)
        self.redial_ids = dict(redial_ids or {})
        words = words or WordStats()
        self.common_words = words.common | STOPWORDS
        self.sentence_starters = words.starters | STOPWORDS
        groups: dict[str, list[Alias]] = defaultdict(list)
        for alias in aliases:
            key = normalize(alias.text)
            if len(key.replace(" ", "")) >= 2:  # one-letter names ("M", "Z", "I") are never linked
                groups[key].append(alias)
        self._keys: list[_Key] = []
        self._automaton = ahocorasick.Automaton()
        for key in sorted(groups):  # sorted: the automaton and key ids do not depend on input order
            entry = self._make_key(key, groups[key])
            self._automaton.add_word(f" {key} ", (len(self._keys), len(key) + 2))
            self._keys.append(entry)
        if self._keys:
            self._automaton.make_automaton()

    @property
    def num_aliases(self) -> int:
        return len(self._keys)

    @property
    def genre_ids(self) -> frozenset[int]:
        """The graph entities that genre words link to."""
        return frozenset(k.genre for k in self._keys if k.genre is not None)

    def _make_key(self, key: str, aliases: list[Alias]) -> _Key:
        # The same entity reached twice (two sources, or exact and derived forms): merge into its best row.
        merged: dict[tuple[Kind, int | None, int | None], Alias] = {}
        for a in aliases if len(aliases) > 1 else ():
            k = (a.kind, a.entity_id, a.year if a.entity_id is None else None)
            old = merged.get(k)
            if old is None:
                merged[k] = a
            else:
                year = old.year if old.year is not None else a.year
                merged[k] = Alias(old.text, old.entity_id, old.kind, year, max(old.popularity, a.popularity),
                                  old.variant and a.variant)
        rows = list(merged.values()) if merged else aliases
        if len(rows) == 1:  # most keys: skip the sorting
            a = rows[0]
            movies = [a] if a.kind == "movie" else []
            genres = [a.entity_id] if a.kind == "genre" and a.entity_id is not None else []
            entities = [a] if a.kind == "entity" and a.entity_id is not None else []
        else:
            movies = sorted((a for a in rows if a.kind == "movie"),
                            key=lambda a: (a.variant, -a.popularity, a.entity_id is None, a.entity_id or 0))
            genres = sorted(a.entity_id for a in rows if a.kind == "genre" and a.entity_id is not None)
            entities = sorted((a for a in rows if a.kind == "entity" and a.entity_id is not None),
                              key=lambda a: (-a.popularity, a.entity_id))
        tokens = key.split()
        content = [t for t in tokens if t not in STOPWORDS]
        if len(tokens) == 1 and (not content or tokens[0].isdigit()):
            need = 2  # "It", "Her", "2012": a year, quotes, or a capitalised word closing a clause ("seen It?")
        # in chat, a sequel number closing a longer title is no ordinary word ("the godfather part 2")
        elif all(t in self.common_words or (t.isdigit() and not (
                self.lowercase_title_cues and i == len(content) - 1 and len(t) <= 2 and i))
                 for i, t in enumerate(content)):
            need = 1  # "the game", "home alone", "Just Go with It": Title Case will do
        else:
            need = 0
        # A name of two or more content words ("tom hanks", "kevin hart") links in lower case too: people type
        # names that way, and two ordinary words in a row that spell a full name are rarely anything else.
        entity_need = max(need, 1 if len(tokens) == 1 else 0) if len(content) < 2 else 0
        if need:  # derived forms of risky titles ("Rock" from "The Rock") are too weak to link at all
            movies = [m for m in movies if not m.variant]
        if len(tokens) == 1 and movies and movies[0].popularity < self.risky_min_popularity:
            # One word naming an obscure movie ("Yes", "Jack", "Hollywood", "hoot", mentioned a few times in
            # ReDial): a capital alone is far likelier a plain word or a name than that movie.
            need += 1
        return _Key(n_tokens=len(tokens), n_content=len(content), movies=movies,
                    genre=genres[0] if genres else None, entities=entities, movie_need=need,
                    entity_need=entity_need, shorthand=bool(entities) and all(a.variant for a in entities))

    @classmethod
    def from_kg(cls, kg: KnowledgeGraph, movie_titles: Mapping[int, Sequence[str]] | None = None, *,
                popularity: Mapping[int, float] | None = None, unlinked_titles: Mapping[str, float] | None = None,
                redial_ids: Mapping[str, int] | None = None, words: WordStats | None = None,
                risky_min_popularity: float = 0.0, genres: Mapping[str, Sequence[str]] = GENRE_LEXICON) -> EntityLinker:
        """A linker over every entity of `kg`.

        movie_titles: entity id -> extra titles, optionally ending in "(Year)" (e.g. ReDial's "Titanic (1997)");
            the graph's own names ("Titanic (1997 film)") are always used too.
        popularity: entity id -> how often the movie is mentioned (ReDial counts); ranks ambiguous titles.
        unlinked_titles: known titles with no graph entity -> mentions; they claim their span and link nothing.
        redial_ids: ReDial movie id ("123" for `@123`) -> entity id.
        words: which words are ordinary and which open sentences (`word_stats`); `STOPWORDS` are always both.
        risky_min_popularity: a risky title ("Yes", "Hope") whose best movie has fewer mentions needs one more
            level of evidence (see `_judge`).
        genres: genre word -> graph entity names to try (`GENRE_LEXICON`).
        """
        return cls(kg_aliases(kg, movie_titles, popularity=popularity, unlinked_titles=unlinked_titles,
                              genres=genres),
                   movie_entities=kg.item_set, redial_ids=redial_ids, words=words,
                   risky_min_popularity=risky_min_popularity)

    def link(self, text: str) -> list[Mention]:
        """Entities mentioned in `text`, in text order, duplicates kept (ECR counts repeated mentions)."""
        if not isinstance(text, str):
            raise TypeError(f"link() takes str, not {type(text).__name__}")
        tokens = _tokenize(text)
        if not tokens:
            return []
        mentions: list[Mention] = []
        for tok, s, e in tokens:
            if tok == "@":
                eid = self.redial_ids.get(text[s + 1:e])
                if eid is not None:
                    mentions.append(Mention(eid, s, e, text[s:e], eid in self.movie_entities))
        if not self._keys:
            return mentions
        norm = " " + " ".join(t for t, _, _ in tokens) + " "
        first_token_at: dict[int, int] = {}
        pos = 0
        for i, (tok, _, _) in enumerate(tokens):
            first_token_at[pos] = i  # the space before token i
            pos += len(tok) + 1
        shouting = text.isupper()  # "I LOVED IT": capitals carry no information
        found: list[tuple[int, int, int, int, Mention | None]] = []  # (-tokens, -content, first token, end, mention)
        for end_char, (key_id, length) in self._automaton.iter(norm):
            first = first_token_at[end_char - length + 1]
            key = self._keys[key_id]
            last = first + key.n_tokens - 1
            judged = self._judge(text, tokens, first, last, key, shouting)
            if judged is not None:
                found.append((-key.n_tokens, -key.n_content, first, judged[0], judged[1]))
        # Longest first ("star wars" over "the star"), then leftmost; a kept match blocks every overlapping one.
        found.sort(key=lambda f: (f[0], f[1], f[2]))
        starts = [s for _, s, _ in tokens]
        taken = bytearray(len(tokens))  # tokens already covered, a span's trailing year included
        for _, _, first, end, mention in found:
            last = bisect_left(starts, end) - 1
            if any(taken[first:last + 1]):
                continue
            taken[first:last + 1] = b"\x01" * (last + 1 - first)
            if mention is not None:
                mentions.append(mention)
        if self.fuzzy_names:
            mentions = self._fuzzy(text, tokens, taken, mentions)
        if self.fuzzy_surnames:
            mentions = self._slipped(text, tokens, taken, mentions)
        if self.fuzzy_titles:
            mentions = self._misspelled(text, tokens, mentions)
        mentions.sort(key=lambda m: (m.start, m.end))
        return mentions

    def _slipped(self, text: str, tokens: list[tuple[str, int, int]], taken: bytearray,
                 mentions: list[Mention]) -> list[Mention]:
        """A lone word one edit from a well-known person's long surname, first letter kept, no real word itself,
        where a person is plainly meant: after "with", "by" ... , before "movies" or a genre, or opening the
        message ("kubrik film", "something by spielburg", "tarentino movies", "scorcese crime")."""
        covered = {(m.start, m.end) for m in mentions}
        out = list(mentions)
        for i, (tok, s, e) in enumerate(tokens):
            if (taken[i] or len(tok) < _SLIP_MIN_LETTERS or not tok.isalpha() or tok in self.ordinary_words
                    or tok in self.common_words or tok in self.fuzzy_surnames or (s, e) in covered):
                continue
            if not ((i > 0 and tokens[i - 1][0] in _PERSON_CUES) or i == 0
                    or (i + 1 < len(tokens) and tokens[i + 1][0] in _FILM_NOUNS | _GENRE_WORDS)):
                continue
            hit = process.extractOne(tok, self._surname_choices, scorer=Levenshtein.distance, score_cutoff=1)
            if hit is not None and hit[0][0] == tok[0]:
                eid = self.fuzzy_surnames[hit[0]]
                out.append(Mention(eid, s, e, text[s:e], eid in self.movie_entities))
        return out

    def _misspelled(self, text: str, tokens: list[tuple[str, int, int]], mentions: list[Mention]) -> list[Mention]:
        """Adjacent words that come one typo (two past 8 letters, three past 16; a swap of two letters is one) from a much-mentioned
        movie's title, first letter kept: "inceptoin", "the shawshank redemtion". A mention inside those words
        gives way ("the dark knigth" is not "The Dark"); one that sticks out of them keeps its words. Every word
        that differs from the title's must be no real word (`ordinary_words`: "the words" is not "The Birds"),
        so a title typed right stays the linker's decision and ordinary prose never turns into a title."""
        for n in sorted(self.fuzzy_titles, reverse=True):  # the longest title first
            choices = self.fuzzy_titles[n]
            for i in range(len(tokens) - n + 1):
                words = [t for t, _, _ in tokens[i:i + n]]
                phrase = " ".join(words)
                start, end = tokens[i][1], tokens[i + n - 1][2]
                if (len(phrase) < 6 or phrase in choices
                        or all(w in self.common_words or not w.isalpha() for w in words)
                        or any(m.start < end and start < m.end and not (start <= m.start and m.end <= end)
                               for m in mentions)):
                    continue
                hit = process.extractOne(phrase, choices.keys(), scorer=OSA.distance,
                                         score_cutoff=1 if len(phrase) <= 8 else 2 if len(phrase) <= 16 else 3)
                if hit is not None and hit[0][0] == phrase[0] and all(
                        w not in self.ordinary_words for w, t in zip(words, hit[0].split()) if w != t):
                    eid = choices[hit[0]]
                    mentions = [m for m in mentions if not (start <= m.start and m.end <= end)]
                    mentions.append(Mention(eid, start, end, text[start:end], eid in self.movie_entities))
        return mentions

    def _fuzzy(self, text: str, tokens: list[tuple[str, int, int]], taken: bytearray,
               mentions: list[Mention]) -> list[Mention]:
        """Two adjacent words no alias covered that spell a well-known person's two-word name ("will smith", whose
        function word keeps the alias table from linking it lower-case) or come one edit (two for names over 12
        letters) from it, first letters kept and the surname no function word ("jim carey", "will ferell"). A
        typed full name outranks a surname alias inside it ("Will Farrell" is Will Ferrell, not Colin Farrell)."""
        one_word = {m.start: m for m in mentions if not m.is_movie and " " not in m.surface}
        out = list(mentions)
        i = 0
        while i + 1 < len(tokens):
            (a, s, _), (b, bs, e) = tokens[i], tokens[i + 1]
            pair = f"{a} {b}"
            surname = one_word.get(bs)
            if (taken[i] or (taken[i + 1] and (surname is None or surname.end != e)) or min(len(a), len(b)) < 3
                    or not (a + b).isalpha()):
                i += 1
                continue
            exact = self.fuzzy_names.get(pair)  # "will smith": a name of function words, lower-case
            hit = (pair, 0, 0) if exact is not None else None
            if hit is None and b not in STOPWORDS:
                hit = process.extractOne(pair, self._fuzzy_choices, scorer=Levenshtein.distance,
                                         score_cutoff=1 if len(pair) <= 12 else 2)
            if hit is not None and all(x[0] == y[0] for x, y in zip(pair.split(), hit[0].split())):
                eid = self.fuzzy_names[hit[0]]
                if surname is not None:
                    out.remove(surname)
                out.append(Mention(eid, s, e, text[s:e], eid in self.movie_entities))
                i += 2
                continue
            i += 1
        return out

    def _inside_longer_name(self, text: str, tokens: list[tuple[str, int, int]], first: int, last: int) -> bool:
        """A capitalised word touches the span, with no punctuation between: the span is part of a longer name
        ("Cold War"). Words that often open sentences do not count: ReDial users often skip the full stop."""
        def name_like(i: int, gap: str) -> bool:
            tok, s, _ = tokens[i]
            return (text[s].isupper() and tok not in self.sentence_starters
                    and tok != "@" and not any(c in _SENTENCE_END or c in ",;:" for c in gap))

        if first > 0 and name_like(first - 1, text[tokens[first - 1][2]:tokens[first][1]]):
            return True
        return last + 1 < len(tokens) and name_like(last + 1, text[tokens[last][2]:tokens[last + 1][1]])

    def _judge(self, text: str, tokens: list[tuple[str, int, int]], first: int, last: int, key: _Key,
               shouting: bool) -> tuple[int, Mention | None] | None:
        """(span end, mention or None for a known title outside the graph), or None if the match is rejected."""
        start, end = tokens[first][1], tokens[last][2]
        if (self.lowercase_title_cues and first == last and last + 1 < len(tokens)
                and tokens[last + 1][0] in _TIME_NOUNS and not _YEAR_AFTER.match(text, end)):
            return None  # "a movie for friday night", "halloween night with the kids": when, not which (chat only)
        year = None
        year_end = end
        if key.movies:
            m = _YEAR_AFTER.match(text, end)
            if m:
                year, year_end = int(m.group(1)), m.end()
        quoted = 0 < start and end < len(text) and text[start - 1] in _QUOTES and text[end] in _QUOTES
        # Evidence that a title is meant: 3 a year or quotes; 2 Title Case closing a clause ("about It?") or
        # after a cue word ("the new It"); 1 Title Case; 0 none.
        if quoted or year is not None:
            evidence = 3
        elif shouting or not _title_case(text, tokens, first, last, self.sentence_starters):
            evidence = 0
        elif max(key.movie_need, key.entity_need) and self._inside_longer_name(text, tokens, first, last):
            evidence = 0  # "Infinity War", "Saw Freddy": the capitals belong to a longer name
        else:
            cue = first > 0 and tokens[first - 1][0] in _TITLE_CUES
            evidence = 2 if cue or _CLAUSE_END.match(text, end) else 1
        person_cue = False
        if evidence == 0 and key.shorthand and not shouting and (
                (first > 0 and tokens[first - 1][0] in _PERSON_CUES)
                or (last + 1 < len(tokens) and tokens[last + 1][0] in _FILM_NOUNS | _SERIES_PARTS | _GENRE_WORDS)
                # "tarantino's", "the nolan ones", "a nolan thriller"
                or (last + 1 < len(tokens) and tokens[last + 1][0] in _PERSON_AFTER
                    and (_sentence_start(text, start) or tokens[first - 1][0] in _OPENERS_WORDS
                         or text[:start].rstrip().endswith(",")))  # or a clause: "not that one, denzel is..."
                or (_sentence_start(text, start) and _NAME_ALONE.match(text, end))):  # "hitchcock maybe?"
            # "something with dicaprio", "an old hitchcock film", "spielberg gets on my nerves": a surname typed
            # in lower case, read as the person ("the rock is in that one")
            evidence, person_cue = 1, True
        if (evidence == 0 and self.lowercase_title_cues and key.movies and key.movie_need == 1 and not shouting
                and (_lowercase_title_cue([t for t, _, _ in tokens[max(0, first - 6):first]])
                     or (text[:start].rstrip().endswith(",")  # "i've seen forrest gump, cast away and big"
                         and any(t in _SEEN_CUES or t in _OPINION_CUES for t, _, _ in tokens[max(0, first - 8):first])))
                and not all(t in _POINTING for t, _, _ in tokens[first:last + 1])):
            evidence = 1  # "anything similar to get out?", "ive seen up": a title of ordinary words, lower case
        if (evidence == 0 and self.lowercase_title_cues and key.movies and key.movie_need == 1 and key.n_content >= 2
                and first > 0 and tokens[first - 1][0] in ("not", "no", "except", "besides")):
            evidence = 1  # "a scorsese movie with de niro thats not taxi driver"
        if (evidence == 0 and self.lowercase_title_cues and key.movies and key.movie_need == 2 and first == last
                and not tokens[first][0].isdigit() and tokens[first][0] not in _PRONOUNS
                and first >= 2 and tokens[first - 1][0] in ("and", "or")
                and _lowercase_title_cue([t for t, _, _ in tokens[max(0, first - 6):first]])
                and (_CLAUSE_END.match(text, end) or (last + 1 < len(tokens) and tokens[last + 1][0] in _LIST_TAIL))):
            evidence = 2  # "seen toy story, finding nemo and up like a million times": "up" closes a list of titles
        if (evidence == 0 and self.lowercase_title_cues and key.movies and key.movie_need == 1 and not shouting
                and key.n_content >= 2 and key.movies[0].popularity >= FUZZY_TITLE_MIN_MENTIONS
                and _sentence_start(text, start) and _CLAUSE_END.match(text, end)):
            evidence = 1  # "pretty woman? hard pass": a much-named title said as a whole clause, lower case

        if evidence == 0 and self.lowercase_title_cues and key.movies and _small_talk(tokens, first, last):
            return None  # "the heat in my apartment", "seven days off", "im from chicago" (chat only)
        movie: Alias | None = None
        span_end = end
        # a lower-case title that "of" continues heads a phrase: "in the spirit of", "the rest of" (chat only: the
        # prepared datasets keep their inputs)
        of_phrase = (self.lowercase_title_cues and evidence == 0 and last + 1 < len(tokens)
                     and tokens[last + 1][0] == "of")
        if key.movies and evidence >= key.movie_need and not of_phrase:
            if year is not None:
                span_end = year_end
                dated = [a for a in key.movies if a.year is not None and abs(a.year - year) <= 1]
                dated.sort(key=lambda a: a.year != year)  # stable: exact year first, then the usual ranking
                pool = dated or [a for a in key.movies if a.year is None]
                if not pool:  # "It (1990)" when the graph has only 1966 and 2017: a title we know, a release we lack
                    return span_end, None
                movie = pool[0]
            else:
                movie = key.movies[0]
        entity = key.entities[0] if key.entities and evidence >= key.entity_need else None
        # "something with keanu", "can't stand keanu": the star, not the film Keanu (2016)
        starring = (entity is not None and key.shorthand and year is None and (person_cue or first > 0 and (
                    tokens[first - 1][0] in _STAR_CUES or (
                        tokens[first - 1][0] in _PERSON_CUES and movie is not None
                        and movie.popularity < _PERSON_OVER_FILM_MENTIONS)) or (  # "Keanu is great but ..."
                    self.lowercase_title_cues and last + 1 < len(tokens) and tokens[last + 1][0] in _PERSON_AFTER
                    and _sentence_start(text, start) and movie is not None
                    and movie.popularity < _PERSON_OVER_FILM_MENTIONS)))
        # Exact title > genre word (unless capitals or a year say title) > person or other name > derived title.
        if movie is not None and not movie.variant and (key.genre is None or evidence > 0) and not starring:
            chosen = movie.entity_id
        elif key.genre is not None:
            chosen, span_end = key.genre, end
        elif entity is not None:
            chosen, span_end = entity.entity_id, end
        elif movie is not None:
            chosen = movie.entity_id
        else:
            return None
        if chosen is None and entity is not None and self.lowercase_title_cues and year is None:
            # a title outside the graph that is also a well-known name is the name in chat: ReDial has a seeker's
            # "Emma Stone" among its movie mentions (chat only: the prepared datasets keep their links)
            chosen, span_end = entity.entity_id, end
        if chosen is None:  # a known title with no graph entity: claims the span, links nothing
            return span_end, None
        return span_end, Mention(chosen, start, span_end, text[start:span_end], chosen in self.movie_entities)


_OPINION_CUES = frozenset(["loved", "liked", "love", "hated", "enjoyed", "adored", "disliked"])


_POSSESSIVES = frozenset(["my", "our", "his", "her", "their", "your", "me", "i"])
_NUMBER_WORDS = frozenset(["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "hundred"])


def _small_talk(tokens: list[tuple[str, int, int]], first: int, last: int) -> bool:
    """Is a lower-case title with nothing else saying it is one (no capitals, cue or year) plainly ordinary words
    here: before "in my" / "at our", a one-word title before "my" or "to" / "away", after "from" / "named", or a
    number before a plural ("the heat in my apartment", "signs my cat hates me", "taken to the movies as a kid",
    "im from chicago", "her name is amelie", "seven days off")?"""
    nxt = tokens[last + 1][0] if last + 1 < len(tokens) else ""
    nxt2 = tokens[last + 2][0] if last + 2 < len(tokens) else ""
    before = " ".join(t for t, _, _ in tokens[max(0, first - 3):first])
    if nxt in ("in", "at", "on") and nxt2 in _POSSESSIVES:
        return True
    return first == last and (nxt in _POSSESSIVES or nxt in ("to", "away", "off", "into")
                              or re.search(r"\b(m|im|am|are|re|is|live|living|moved|based)\s+(from|in|near)$|\bnamed$|"
                                           r"\bname (is|s)$", before) is not None
                              or (tokens[first][0] in _NUMBER_WORDS and nxt.endswith("s")))


def _lowercase_title_cue(before: list[str]) -> bool:
    """Do the words `before` a lower-case span (up to six) say a movie title follows? "seen" / "watched" / "saw",
    "similar to", "in the vein of", "same vibe as", or "like" / "than" after a word for a movie ("movies like up",
    "something like get out") or opening the message, not a bare "like" ("i like it", "would like more"); or "and"
    / "or" closing a list that a seen-word or an opinion opened ("ive seen shrek and up", "loved la la land and
    whiplash"); or an opinion verb after "i" / "we" ("i loved kill bill")."""
    prev = before[-1] if before else ""
    prev2 = before[-2] if len(before) > 1 else ""
    return (prev in _SEEN_CUES or (prev == "to" and prev2 in ("similar", "close", "comparable"))
            or (prev in ("like", "than") and prev2 in _MOVIE_WORDS)
            or (prev == "like" and len(before) == 1)  # "like die hard but in space": a message opening on "like"
            or (prev == "of" and prev2 in ("vein", "lines", "spirit", "style", "reminiscent"))
            or (prev == "as" and prev2 in ("same", "vibe", "vibes", "vein", "style", "feel", "tone"))
            or (prev in ("and", "or") and prev2 not in STOPWORDS
                and any(t in _SEEN_CUES or t in _OPINION_CUES for t in before[:-2]))
            or (prev in _OPINION_CUES and (prev2 in ("i", "i've", "ive", "we", "really", "totally", "always")
                                           or len(before) == 1)))  # "hated django"


def _title_case(text: str, tokens: list[tuple[str, int, int]], first: int, last: int,
                starters: Collection[str]) -> bool:
    """Every significant word of the span is capitalised; a sentence's first word counts only if it is not one
    that often opens sentences ("Alien is a classic" counts, "It was fun" does not)."""
    at_sentence_start = _sentence_start(text, tokens[first][1])
    seen_letter = False
    for i in range(first, last + 1):
        tok, s, e = tokens[i]
        word = text[s:e]
        if not word[0].isalpha():
            continue
        if i > first and tok in _MINOR:
            continue
        if i == first and at_sentence_start and tok in starters:
            continue
        if not word[0].isupper() or (len(word) > 1 and word.isupper()):  # "LOVED", "IT": shouting, not a title
            return False
        seen_letter = True
    return seen_letter


def _sentence_start(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in _OPENERS:
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END or "\n" in text[i + 1:start]


# --- alias tables ------------------------------------------------------------------------------------------------


def _film_like(name: str) -> bool:
    """"Thor (volcano)" is not; "Up (2009 film)", "Toy Story (franchise)" and a bare "Titanic" are."""
    m = _QUALIFIER.search(name)
    return not m or m.start() == 0 or bool(_FILM_QUALIFIER.search(m.group(1)))


def title_variants(title: str) -> list[str]:
    """Derived forms people type: article dropped, subtitle cut, hyphens joined, apostrophes dropped, II -> 2."""
    out: list[str] = []
    words = title.split()
    if len(words) >= 2 and words[0].lower() in ("the", "a", "an"):
        out.append(" ".join(words[1:]))
    for sep in (":", " - ", " – ", " — "):
        if sep in title:
            head = title.split(sep, 1)[0].strip()
            if len(head.split()) >= 2:
                out.append(head)
    if "-" in title:
        out.append(re.sub(r"(?<=\w)-(?=\w)", "", title))
    if "'" in title or "’" in title:
        out.append(re.sub(r"['’]", "", title))
    roman = [_ROMAN.get(w.lower(), w) for w in words]
    if roman != words:
        out.append(" ".join(roman))
    return [v for v in dict.fromkeys(out) if v and normalize(v) != normalize(title)]


def _movie_aliases(entity: int | None, title: str, year: int | None, popularity: float,
                   weak: bool = False) -> list[Alias]:
    """A title and its derived forms; a one-word derived form ("Matrix") only for a movie people often mention."""
    rows = [Alias(title, entity, "movie", year, popularity, variant=weak)]
    rows += [Alias(v, entity, "movie", year, popularity, variant=True) for v in title_variants(title)
             if popularity >= _SHORT_FORM_MIN_MENTIONS or len(normalize(v).split()) > 1]
    return rows


def _graph_counts(kg: KnowledgeGraph) -> tuple[Counter[int], Counter[int]]:
    """(degree of each entity, number of movies naming it as their genre), self-loops excluded."""
    degree: Counter[int] = Counter()
    from_movies: Counter[int] = Counter()
    genre_rel = next((i for uri, i in kg.relation2id.items() if uri.rstrip(">").endswith("/genre")), None)
    items = kg.item_set
    heads = [h for h, _, t in kg.triples if h != t]
    tails = [t for h, _, t in kg.triples if h != t]
    degree.update(heads)
    degree.update(tails)
    from_movies.update(t for h, r, t in kg.triples if r == genre_rel and h in items and h != t)
    return degree, from_movies


def _resolve_genres(kg: KnowledgeGraph, genres: Mapping[str, Sequence[str]], degree: Counter[int],
                    from_movies: Counter[int]) -> dict[str, int]:
    """Genre word -> entity: of the names that exist, the one most movies point to, then the best connected."""
    name_to_id: dict[str, int] = {}
    for i, n in enumerate(kg.names):
        name_to_id.setdefault(n, i)
    out: dict[str, int] = {}
    for word, names in genres.items():
        ids = [name_to_id[n] for n in names if n in name_to_id]
        if ids:
            out[word] = max(ids, key=lambda i: (from_movies[i], degree[i], -i))
    return out


def kg_aliases(kg: KnowledgeGraph, movie_titles: Mapping[int, Sequence[str]] | None = None, *,
               popularity: Mapping[int, float] | None = None, unlinked_titles: Mapping[str, float] | None = None,
               genres: Mapping[str, Sequence[str]] = GENRE_LEXICON) -> list[Alias]:
    """The alias table of `kg` (see `EntityLinker.from_kg` for the arguments)."""
    popularity = popularity or {}
    items = kg.item_set
    degree, from_movies = _graph_counts(kg)
    rows: list[Alias] = []
    for eid, name in enumerate(kg.names):
        if not name:
            continue
        title, year = split_title(name)
        if eid in items:
            rows += _movie_aliases(eid, title, year, float(popularity.get(eid, 0.0)), weak=not _film_like(name))
        elif len(normalize(title)) > 2:  # "DR (broadcaster)" would match every "Dr"
            rows.append(Alias(title, eid, "entity", None, float(degree[eid])))
    for eid, titles in (movie_titles or {}).items():
        for t in titles:
            title, year = split_title(t)
            rows += _movie_aliases(eid, title, year, float(popularity.get(eid, 0.0)))
    for t, count in (unlinked_titles or {}).items():
        title, year = split_title(t)
        rows += _movie_aliases(None, title, year, float(count))
    for word, eid in _resolve_genres(kg, genres, degree, from_movies).items():
        forms = [] if word in _GENRE_NEEDS_NOUN else [word]
        if word in _GENRE_PLURALS and word not in _GENRE_NEEDS_NOUN:
            forms.append(_GENRE_PLURALS[word])
        forms += [f"{word} {noun}" for noun in _GENRE_NOUNS]
        forms += _GENRE_EXTRA.get(word, ())
        rows += [Alias(f, eid, "genre") for f in forms]
    return rows


@dataclass(frozen=True)
class WordStats:
    """Ordinary words (a title made of them needs Title Case) and words that often open a sentence (so their
    capital says nothing). Both lower-case; the defaults know only `STOPWORDS`."""

    common: frozenset[str] = STOPWORDS
    starters: frozenset[str] = STOPWORDS


def word_stats(texts: Iterable[str], min_count: int = 5, max_capitalised: float = 0.5,
               min_starts: int = 3) -> WordStats:
    """Learn `WordStats` from chat text (ReDial train: its movies are `@id`s, so the words around them are plain).

    Ordinary: seen `min_count`+ times inside sentences and capitalised there less than `max_capitalised` of the
    time. Names and titles are capitalised mid-sentence far more often than ordinary words ("jumanji" 96%,
    "coco" 97%, "home" 13%, "game" 8% in ReDial train), which separates them without an external word list.
    Words inside capitalised runs ("Black Panther") are skipped: they are titles being typed.
    Starters: the first word of `min_starts`+ sentences, unless mostly capitalised elsewhere ("Deadpool was
    great" opens sentences too, but "deadpool" is a name).
    """
    corpus = "\n".join(t for t in texts if not t.isupper())
    starts = Counter(w.lower() for w in _SENTENCE_FIRST.findall(corpus))
    corpus = _CAPITAL_RUN.sub(" ", corpus)
    raw = Counter(_ASCII_WORD.findall(corpus))
    raw.subtract(_SENTENCE_FIRST.findall(corpus))  # the first word of a sentence is capitalised anyway
    seen: Counter[str] = Counter()
    capitalised: Counter[str] = Counter()
    for word, n in raw.items():
        if n <= 0 or (word.isupper() and len(word) > 1):  # "US", "LOL": acronyms and shouting say nothing
            continue
        low = word.lower()
        seen[low] += n
        if word[0].isupper():
            capitalised[low] += n

    def name_like(w: str) -> bool:
        return seen[w] >= min_count and capitalised[w] / seen[w] >= max_capitalised

    common = frozenset(w for w, n in seen.items() if n >= min_count and not w.isdigit() and not name_like(w))
    starters = frozenset(w for w, n in starts.items() if n >= min_starts and not w.isdigit() and not name_like(w))
    return WordStats(common=common, starters=starters)


@dataclass
class RedialAliases:
    """Alias tables built from the bundled ReDial files (inputs of `EntityLinker.from_kg`)."""

    movie_titles: dict[int, list[str]]  # entity id -> ReDial titles ("Titanic (1997)")
    popularity: dict[int, float]  # entity id -> mentions in ReDial train
    unlinked_titles: dict[str, float]  # ReDial titles with no graph movie -> mentions in ReDial train
    redial_ids: dict[str, int]  # "123" (for @123) -> entity id, the bundled KGSF mapping only
    words: WordStats
    matched_by_title: int  # ReDial movies absent from the KGSF mapping, attached to a graph movie by title+year


def redial_aliases(kg: KnowledgeGraph, train_files: Sequence[str] = ("redial/train_complete.jsonl.gz",
                                                                     "redial/train_partial.jsonl.gz",
                                                                     "redial/train_noid.jsonl.gz"),
                   movies_csv: Path | None = None, movie_info: Path | None = None) -> RedialAliases:
    """Read ReDial's titles, join them to the graph, and learn from the *train* dialogues how often each movie is
    mentioned (`@id` counts: the popularity prior) and which words are ordinary (`word_stats`). Train only, so
    that nothing here is fitted on the test split (ReDial's own `nbMentions` counts the whole corpus).

    ReDial movies that the KGSF mapping misses (1,678 of 6,924, many popular: "Black Panther (2018)") are attached
    to the graph movie of the same title when exactly one graph movie has that title and a compatible year;
    the rest stay `unlinked_titles`. `redial_ids` (the `@123` tokens) keeps the bundled mapping unchanged.
    """
    ids = redial_movie_entities(kg)
    texts = [m.get("text") or "" for rel in train_files for _, d in iter_jsonl(bundled(rel))
             for m in d.get("messages", [])]
    mentions = Counter(_REDIAL_ID.findall("\n".join(texts)))
    with open_text(movies_csv or bundled("redial/movies_with_mentions.csv.gz")) as f:
        rows = [(r["movieId"], r["movieName"], float(mentions[r["movieId"]])) for r in csv.DictReader(f)]
    info = read_json(movie_info or bundled("kg/redial_movie_info.json.gz"))
    titles: dict[int, list[str]] = defaultdict(list)
    popularity: Counter[int] = Counter()
    unmapped: list[tuple[list[str], float]] = []
    for mid, name, count in rows:
        names = list(dict.fromkeys([name] + ([info[mid]["name"]] if info.get(mid, {}).get("name") else [])))
        eid = ids.get(mid)
        if eid is None:
            unmapped.append((names, count))
        else:
            titles[eid] += names
            popularity[eid] += count

    # Graph movies by normalized title, with every year known for them.
    by_title: dict[str, list[int]] = defaultdict(list)
    years: dict[int, set[int]] = defaultdict(set)
    for eid in kg.item_ids:
        if not _film_like(kg.names[eid]):
            continue
        title, year = split_title(kg.names[eid])
        by_title[normalize(title)].append(eid)
        if year is not None:
            years[eid].add(year)
    for eid, ts in titles.items():
        years[eid].update(y for y in (split_title(t)[1] for t in ts) if y is not None)
    unlinked: Counter[str] = Counter()
    matched = 0
    for names, count in unmapped:
        title, year = split_title(names[0])
        cands = [e for e in by_title.get(normalize(title), [])
                 if year is None or not years[e] or any(abs(year - y) <= 1 for y in years[e])]
        if len(cands) > 1 and year is None:  # "The Lord of the Rings": the one undated entry is the series
            undated = [e for e in cands if not years[e]]
            cands = undated if len(undated) == 1 else cands
        if len(cands) == 1:
            titles[cands[0]] += names
            popularity[cands[0]] += count
            matched += 1
        else:
            for n in names:
                unlinked[n] += count

    return RedialAliases(movie_titles=dict(titles), popularity=dict(popularity), unlinked_titles=dict(unlinked),
                         redial_ids=ids, words=word_stats(texts), matched_by_title=matched)


WELL_KNOWN = 8  # movies a person stars in, directs or writes in the graph before chat shorthands reach them


def person_shorthands(kg: KnowledgeGraph, common: Collection[str],
                      min_movies: int = WELL_KNOWN) -> tuple[list[Alias], dict[str, int]]:
    """(surname and first-name aliases, two-word names for typo matching) of the people with `min_movies`+ graph
    movies. A first name names a person when no other graph person has it ("Denzel", "Meryl").

    A surname ("Tarantino", "Stallone") names a person when it is not an ordinary word (`common`: "King", "Rock",
    "Singer") nor a common first name ("James"), and that person has at least twice the movies of anyone else of
    that surname ("Jackson": Samuel L. 41, Peter 23, so neither). Both link in Title Case, as any one-word name does
    (`_Key.entity_need`), and in lower case after "with", "by" ... or before "movie(s)" (`_judge`)."""
    movies: Counter[int] = Counter()
    for e in kg.item_ids:
        for r, o in kg.neighbours(e):
            if r in ("starring", "director", "writer"):
                movies[o] += 1
    by_surname: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_first: dict[str, list[tuple[int, int]]] = defaultdict(list)
    names: dict[str, int] = {}
    for eid, n in movies.items():
        key = normalize(_QUALIFIER.sub("", kg.names[eid]))
        words = key.split()
        if len(words) < 2:
            continue
        # a surname with its particle: "De Niro", "Van Damme", "Del Toro" (not "Niro")
        surname_words = 2 if len(words) > 2 and words[-2] in _PARTICLES else 1
        by_surname[" ".join(words[-surname_words:])].append((n, eid))
        by_first[words[0]].append((n, eid))
        if n >= min_movies and len(words) == 2:
            names.setdefault(key, eid)
    known = {normalize(kg.names[eid]): eid for eid in movies}
    aliases = [Alias(nick.title(), known[key], "entity", None, float(movies[known[key]]), variant=True)
               for nick, key in ((nick, normalize(name)) for nick, name in NICKNAMES.items()) if key in known]
    for first, people in by_first.items():  # "Denzel", "Meryl": a first name no other graph person has
        if (len(people) == 1 and people[0][0] >= min_movies and len(first) >= 4 and first not in common
                and first not in by_surname):
            aliases.append(Alias(first.title(), people[0][1], "entity", None, float(people[0][0]), variant=True))
    for surname, people in by_surname.items():
        people.sort(reverse=True)
        n, eid = people[0]
        runner_up = people[1][0] if len(people) > 1 else 0
        if (n >= min_movies and n >= 2 * runner_up and len(surname) >= 4 and surname not in common
                and len(by_first.get(surname, ())) < 3):  # "James", "Patrick": first names far more often
            aliases.append(Alias(surname.title(), eid, "entity", None, float(n), variant=True))
    return aliases, names


def build_redial_linker(kg: KnowledgeGraph | None = None, *, chat: bool = False) -> EntityLinker:
    """The linker for the bundled ReDial graph, all alias tables included (about 2.5 s of CPU; build it once).

    chat: also link surnames and one-typo names of well-known people (`person_shorthands`), misspelled titles of
    much-mentioned movies (`EntityLinker._misspelled`), and titles of ordinary
    words typed in lower case after a strong cue ("similar to get out"). The live turn uses it;
    `ecrs prepare` does not, so the prepared datasets (and the rows trained on them) keep their inputs."""
    kg = kg or load_redial_kg()
    tables = redial_aliases(kg)
    aliases = kg_aliases(kg, tables.movie_titles, popularity=tables.popularity,
                         unlinked_titles=tables.unlinked_titles)
    fuzzy: dict[str, int] = {}
    titles: dict[str, int] = {}
    ordinary: frozenset[str] = frozenset()
    surnames: list[Alias] = []
    if chat:
        # Ordinary words from the catalogue's plot summaries, edited prose where names keep their capitals
        # (ReDial's chat types "sandler" lower-case often enough to call it ordinary). 0.25 s.
        plots = [m.get("plot") or "" for m in read_json(bundled("kg/redial_movie_info.json.gz")).values()]
        ordinary = word_stats(plots, min_count=2).common | STOPWORDS
        surnames, fuzzy = person_shorthands(kg, ordinary)
        aliases += surnames
        # ReDial's "Rocky (1976)" found no graph entity, yet the graph's unqualified "Rocky" is that film: a known
        # title that names exactly one graph movie by its bare name links to it (chat only)
        bare: dict[str, list[int]] = defaultdict(list)
        for e in kg.item_ids:
            bare[normalize(kg.names[e])].append(e)
        for t, count in tables.unlinked_titles.items():
            title, year = split_title(t)
            if len(bare.get(normalize(title), ())) == 1:
                aliases += _movie_aliases(bare[normalize(title)][0], title, year, float(count))
        popular = sorted((p, e) for e, p in tables.popularity.items() if p >= FUZZY_TITLE_MIN_MENTIONS)
        titles = {normalize(_TRAILING_YEAR.sub("", t)): e for _, e in popular  # the most mentioned wins a title
                  for t in tables.movie_titles.get(e, ())}
        titles |= {_ARTICLE.sub("", t): e for t, e in titles.items() if _ARTICLE.match(t)}  # "shawshank redemtion"
        # a much-named title's one unusual word, said alone: "not shawshank", "seen lebowski" (a word no other
        # known title has: not "christmas", "america", "infinity")
        in_titles: Counter[str] = Counter(w for ts in tables.movie_titles.values() for w in
                                          {w for t in ts for w in normalize(_TRAILING_YEAR.sub("", t)).split()})
        in_titles.update(w for t in tables.unlinked_titles for w in set(normalize(t).split()))
        # (a title named a few times, by its last word: "she's seen totoro" is My Neighbor Totoro, 9 mentions; not
        # "going bowling" for Bowling for Columbine)
        named = {normalize(_TRAILING_YEAR.sub("", t)): e for p, e in sorted((p, e) for e, p in tables.popularity.items()
                                                                           if p >= UNIQUE_WORD_MIN_MENTIONS)
                 for t in tables.movie_titles.get(e, ())}
        aliases += [Alias(w.title(), e, "movie", None, tables.popularity.get(e, 0.0), variant=True)
                    for t, e in named.items() for i, w in enumerate(t.split())
                    if len(w) >= 6 and w.isalpha() and w not in ordinary and in_titles[w] == 1
                    and (t in titles or i == len(t.split()) - 1)]
        # a much-named title's first word outranks a rarely named film of that one-word title: "hated django" in chat
        # is Django Unchained (17 ReDial mentions), not Django (1966, 3)
        series = {normalize(name) for name in FRANCHISES}  # "batman" is the character, not Batman Begins
        one_word = {normalize(_TRAILING_YEAR.sub("", t)): e for e, ts in tables.movie_titles.items() for t in ts
                    if len(normalize(_TRAILING_YEAR.sub("", t)).split()) == 1}
        for t, e in named.items():
            first = t.split()[0]
            if (len(t.split()) > 1 and first in one_word and one_word[first] != e and first not in ordinary
                    and first not in series and tables.popularity.get(e, 0.0) >= _FIRST_WORD_MIN_MENTIONS
                    and tables.popularity.get(one_word[first], 0.0) * 4 < tables.popularity.get(e, 0.0)):
                aliases.append(Alias(first.title(), e, "movie", None, tables.popularity.get(e, 0.0)))
        # how people write a few titles: "se7en", "e.t."
        by_name = {normalize(t): e for e, ts in tables.movie_titles.items() for t in ts}
        aliases += [Alias(styled, by_name[normalize(title)], "movie", None, tables.popularity.get(by_name[normalize(title)], 0.0))
                    for styled, title in TITLE_STYLINGS.items() if normalize(title) in by_name]
    return EntityLinker(aliases, movie_entities=kg.item_set, redial_ids=tables.redial_ids, words=tables.words,
                        risky_min_popularity=RISKY_MIN_MENTIONS, fuzzy_names=fuzzy, fuzzy_titles=titles,
                        ordinary_words=ordinary, lowercase_title_cues=chat,
                        fuzzy_surnames={normalize(a.text): a.entity_id for a in surnames if a.entity_id is not None
                                        and " " not in a.text and len(a.text) >= _SLIP_MIN_LETTERS} if chat else None)
