"""The movie catalogue: display facts for every graph item (title, year, genres, people, plot).

Facts come from `kg/redial_movie_info.json` (iEvaLM-CRS) where a ReDial movie maps to the item, else from the
DBpedia name (`Titanic (1997 film)` -> title `Titanic`, year 1997) and the graph's neighbours. They are what the
system may state about a movie: the generator is grounded in them and the chat's one-line reasons quote them.

Genres: the movie info keeps IMDb's first three in alphabetical order, so a film's later genres fall off (Star Wars
is "action, adventure, fantasy", no sci-fi, and "no sci-fi" could not rule it out). MovieLens' genres of the same
IMDb id are appended after them (`movielens/`), so the first ones, which the reasons and prompts quote, stay IMDb's.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cache

from ecrs.data.bundle import bundled, open_text, read_json
from ecrs.data.kg import KnowledgeGraph, redial_movie_entities, split_title


@dataclass
class Movie:
    entity: int
    title: str
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    directors: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    stars: list[str] = field(default_factory=list)
    plot: str = ""
    imdb_id: str = ""
    studios: list[str] = field(default_factory=list)  # brands of its production companies and distributors

    @property
    def display(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    def reason(self) -> str:
        """One line from facts only (no invention): genre, director, stars."""
        parts = []
        if self.genres:
            parts.append("/".join(self.genres[:2]))
        if self.directors:
            parts.append(f"directed by {self.directors[0]}")
        if self.stars:
            parts.append("starring " + " and ".join(self.stars[:2]))
        return ", ".join(parts)


def load_catalogue(kg: KnowledgeGraph) -> dict[int, Movie]:
    """Item entity id -> Movie, for every item of the ReDial graph."""
    info = read_json(bundled("kg/redial_movie_info.json.gz"))
    movies: dict[int, Movie] = {}
    for rid, entity in sorted(redial_movie_entities(kg).items(), key=lambda kv: int(kv[0])):
        if entity in movies or rid not in info or entity not in kg.item_set:
            continue
        i = info[rid]
        title, year = split_title(" ".join(i.get("name", "").split()))
        genres = list(i.get("genre") or [])
        genres += [g for g in movielens_genres().get(i.get("imdb_id") or "", []) if g not in genres]
        movies[entity] = Movie(
            entity=entity, title=title or split_title(kg.names[entity])[0], year=year,
            genres=genres, directors=list(i.get("director") or []),
            writers=list(i.get("writer") or []), stars=list(i.get("star") or []),
            plot=i.get("plot") or "", imdb_id=i.get("imdb_id") or "",
        )
    for entity, movie in movies.items():
        movie.studios = _studios(kg, entity)
    for entity in kg.item_ids:
        if entity not in movies:
            title, year = split_title(kg.names[entity])
            people = {"director": [], "starring": []}
            for rel, other in kg.neighbours(entity):
                if rel in people:
                    people[rel].append(kg.names[other])
            movies[entity] = Movie(entity=entity, title=title, year=year,
                                   directors=people["director"], stars=people["starring"][:3],
                                   studios=_studios(kg, entity))
    return movies


# Studios people name ("nothing marvel", "not disney"): the word -> the brand, and the brand -> its companies'
# graph names (production company or distributor: Buena Vista is Disney). Pixar stays a genre word (animation),
# as people use it; the brands here are the distinctive ones.
STUDIOS: dict[str, tuple[str, str]] = {
    "Disney": (r"disney", r"disney|buena vista"), "DreamWorks": (r"dream ?works", r"dreamworks"),
    "Marvel": (r"marvel", r"marvel"), "DC": (r"dc(?: comics| films)?", r"\bdc (comics|entertainment|films)"),
    "Studio Ghibli": (r"(?:studio )?ghibli", r"ghibli"), "A24": (r"a24", r"\ba24\b"),
    "Netflix": (r"netflix", r"netflix"), "Blumhouse": (r"blumhouse", r"blumhouse"),
    "Lucasfilm": (r"lucasfilm", r"lucasfilm"), "Illumination": (r"illumination", r"illumination"),
}
_STUDIO_WORD = [(re.compile(rf"\b(?:{word})\b", re.I), brand) for brand, (word, _) in STUDIOS.items()]
_STUDIO_COMPANY = [(re.compile(company, re.I), brand) for brand, (_, company) in STUDIOS.items()]


def _studios(kg: KnowledgeGraph, entity: int) -> list[str]:
    companies = [kg.names[o] for r, o in kg.neighbours(entity) if r in ("productionCompany", "distributor")]
    return [brand for pattern, brand in _STUDIO_COMPANY if any(pattern.search(c) for c in companies)]


def studio_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, brand) of each studio word in `text`, in text order."""
    return sorted((m.start(), m.end(), brand) for pattern, brand in _STUDIO_WORD for m in pattern.finditer(text))


# MovieLens genre -> catalogue genre (IMDb's vocabulary, lower case); "IMAX" and "(no genres listed)" are none
_MOVIELENS = {"Action": "action", "Adventure": "adventure", "Animation": "animation", "Children": "family",
              "Comedy": "comedy", "Crime": "crime", "Documentary": "documentary", "Drama": "drama", "Fantasy": "fantasy",
              "Film-Noir": "crime", "Horror": "horror", "Musical": "musical", "Mystery": "mystery", "Romance": "romance",
              "Sci-Fi": "sci-fi", "Thriller": "thriller", "War": "war", "Western": "western"}


@cache
def movielens_genres() -> dict[str, list[str]]:
    """IMDb id ("tt0076759") -> the catalogue genres MovieLens gives that movie."""
    with open_text(bundled("movielens/links.csv.gz")) as f:
        imdb = {r["movieId"]: f"tt{r['imdbId']}" for r in csv.DictReader(f)}
    out: dict[str, list[str]] = {}
    with open_text(bundled("movielens/movies.csv.gz")) as f:
        for r in csv.DictReader(f):
            if r["movieId"] in imdb:
                out[imdb[r["movieId"]]] = list(dict.fromkeys(
                    _MOVIELENS[g] for g in r["genres"].split("|") if g in _MOVIELENS))
    return out


# Words people use for the catalogue's genres (ReDial movie info vocabulary). The graph itself has almost no
# movie->genre edges, so a genre a person names is matched against the catalogue's genre lists. What the person
# says about it (wants, avoids, likes, dislikes) is the stance classifier's job (`ecrs.models.stance`), not a
# keyword rule's.
# English words first; the Spanish, French and German words of the commonest genres ("una de terror", "comédie")
# so a message in another language still steers the pick (the replies stay English)
GENRE_WORDS: dict[str, str] = {
    r"comed(y|ies)|funny|funnier|hilarious|laughs?|comedic|comedias?|com[eé]dies?|kom[oö]die": "comedy",
    r"horror|scary|scarier|slashers?|creepy|spooky|jump[- ]?scares?|zombies?|terror|miedo|horreur": "horror",
    r"sci[- ]?fi|science fiction|space (movies?|films?|operas?)|time[- ]travel|ciencia ficci[oó]n": "sci-fi",
    r"romance|romantic|rom-?coms?|romcoms?|love stor(y|ies)|chick flicks?|rom[aá]ntic[ao]s?": "romance",
    r"animat(ed|ion)|cartoons?|pixar|anime|animad[ao]s?|dibujos": "animation",
    r"documentar(y|ies)|documentales?": "documentary",
    r"(?<!live )(?<!live-)action|superheroe?s?|super-heroe?s?|acci[oó]n": "action",  # "live action" is no genre
    r"thrillers?|suspense|suspenseful|suspenso": "thriller",
    r"dramas?|dramatic|tearjerkers?|tear-jerkers?": "drama",
    r"family-friendly|kid-friendly|family|kids|children": "family",
    r"fantasy|wizards?|dragons?": "fantasy",
    r"myster(y|ies)|whodunn?its?": "mystery",
    r"crime|heists?|gangsters?|mob movies?": "crime",
    r"war movies?|war films?|war": "war",
    r"westerns?|cowboys?|vaqueros?": "western",
    r"musicals?": "musical",
    r"adventures?|aventuras?": "adventure",
    r"biopics?|biograph(y|ies|ical)|true stor(y|ies)": "biography",
    r"sports?": "sport",
}
_GENRE_RE = [(re.compile(rf"\b(?:{pat})\b", re.I), genre) for pat, genre in GENRE_WORDS.items()]


def genre_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, catalogue genre) of each genre word in `text`, in text order, overlaps resolved in favour of
    the earlier then longer match ("rom-com" is romance and comedy: the first pattern that claims it wins)."""
    found = sorted(((m.start(), -m.end(), genre) for pattern, genre in _GENRE_RE for m in pattern.finditer(text)))
    out: list[tuple[int, int, str]] = []
    for start, neg_end, genre in found:
        if not out or start >= out[-1][1]:
            out.append((start, -neg_end, genre))
    return out
