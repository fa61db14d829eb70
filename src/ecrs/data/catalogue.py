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
from collections.abc import Collection
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
    franchises: list[str] = field(default_factory=list)  # series people name as one thing ("Star Wars", `FRANCHISES`)
    topics: list[str] = field(default_factory=list)  # what its plot summary is about ("vampires", `TOPICS`)

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
        movie.franchises = franchises_of(movie.title, movie.studios)
        movie.topics = [name for name, pattern in _TOPIC.items() if pattern.search(movie.plot)]
    for entity in kg.item_ids:
        if entity not in movies:
            title, year = split_title(kg.names[entity])
            people = {"director": [], "starring": []}
            for rel, other in kg.neighbours(entity):
                if rel in people:
                    people[rel].append(kg.names[other])
            studios = _studios(kg, entity)
            movies[entity] = Movie(entity=entity, title=title, year=year,
                                   directors=people["director"], stars=people["starring"][:3],
                                   studios=studios, franchises=franchises_of(title, studios))
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
# The comic-book studios' characters, for their films the graph gives another distributor (Sony's Spider-Man, Fox's
# X-Men): "nothing marvel" rules them out too
_STUDIO_TITLES = {
    "Marvel": re.compile(r"(the )?(amazing )?(spider-man|x-men|x2|the wolverine|logan$|deadpool|venom|fantastic four|"
                         r"captain america|iron man|thor|(the )?(incredible )?hulk|ant-man|black panther|doctor strange|"
                         r"guardians of the galaxy|avengers|the avengers|daredevil|elektra|(the )?punisher|ghost rider|"
                         r"blade( ii|: trinity)?$|captain marvel)", re.I),
    "DC": re.compile(r"(.*\bbatman\b|.*\bsuperman\b|man of steel|the dark knight|wonder woman|justice league|aquaman|"
                     r"suicide squad|green lantern|watchmen|shazam|catwoman|constantine|jonah hex|steel$)", re.I),
}


def _studios(kg: KnowledgeGraph, entity: int) -> list[str]:
    companies = [kg.names[o] for r, o in kg.neighbours(entity) if r in ("productionCompany", "distributor")]
    title = split_title(kg.names[entity])[0]
    return [brand for pattern, brand in _STUDIO_COMPANY
            if any(pattern.search(c) for c in companies) or (brand in _STUDIO_TITLES and _STUDIO_TITLES[brand].match(title))]


def studio_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, brand) of each studio word in `text`, in text order."""
    return sorted((m.start(), m.end(), brand) for pattern, brand in _STUDIO_WORD for m in pattern.finditer(text))


# Series and groups people name as one thing ("no star wars films", "not the batman ones", "nothing pixar",
# "no superhero stuff"): the name -> (the words people
# type, the titles it holds, and what the words need to mean the series: "" nothing, "noun" a "movies" / "films" /
# "ones" after them ("Batman" alone is the 1989 film), "the" that noun and a "the" or a capital before it ("I saw
# movies" is no Saw, "the saw movies" is). The graph has no series edges and
# sequels often share no title words ("The Dark Knight", "Return of the Jedi"), hence the title lists. A name is
# ruled out or wished for as a genre is.
FRANCHISES: dict[str, tuple[str, str, str]] = {
    "Star Wars": (r"star ?wars", r"star wars|.*\ba star wars story|the empire strikes back|return of the jedi", ""),
    "Star Trek": (r"star ?trek", r"star trek", ""),
    "Harry Potter": (r"harry potter", r"harry potter|fantastic beasts", ""),
    "The Lord of the Rings": (r"lord of the rings|lotr", r"the lord of the rings", ""),
    "The Hobbit": (r"(?:the )?hobbit", r"the hobbit", "noun"),
    "Batman": (r"batman", r".*\bbatman\b|the dark knight", "noun"),
    "Superman": (r"superman", r".*\bsuperman\b|man of steel", "noun"),
    "Spider-Man": (r"spider-?man", r"(the amazing )?spider-man", ""),
    "X-Men": (r"x-?men", r"x-men|x2|the wolverine|logan$", ""),
    "Wolverine": (r"wolverine", r"x-men origins: wolverine|the wolverine|logan$", "noun"),
    "Avengers": (r"avengers", r"(the )?avengers|marvel's the avengers", "noun"),
    "Fast & Furious": (r"fast (?:and|&|n) (?:the )?furious", r"(the )?fast (and|&) (the )?furious|2 fast 2 furious|"
                       r"fast five|furious 7|the fate of the furious", ""),
    "Mission: Impossible": (r"mission:? impossible", r"mission: impossible|mission impossible", ""),
    "James Bond": (r"james bond|bond|007", r"(dr\. no|from russia with love|goldfinger|thunderball|you only live "
                   r"twice|on her majesty's secret service|diamonds are forever|live and let die|the man with the "
                   r"golden gun|the spy who loved me|moonraker|for your eyes only|octopussy|a view to a kill|the "
                   r"living daylights|licence to kill|goldeneye|tomorrow never dies|the world is not enough|die "
                   r"another day|casino royale|quantum of solace|skyfall|spectre)$", "noun"),
    "Jurassic Park": (r"jurassic (?:park|world)", r"jurassic (park|world)|the lost world: jurassic park", ""),
    "Transformers": (r"transformers", r"(the )?transformers|bumblebee$", "noun"),
    "Pirates of the Caribbean": (r"pirates of the caribbean", r"pirates of the caribbean", ""),
    "Toy Story": (r"toy story", r"toy story", ""),
    "Shrek": (r"shrek", r"shrek|puss in boots", "noun"),
    "Rambo": (r"rambo", r"rambo|first blood", "noun"),
    "Rocky": (r"rocky", r"rocky( [ivx]+| balboa)?$|creed( ii)?$", "the"),
    "Saw": (r"saw", r"saw( [ivx]+| \d| 3d)?$|jigsaw$", "the"),
    "Scream": (r"scream", r"scream( \d)?$", "the"),
    "Halloween": (r"halloween", r"halloween\b", "the"),
    "Friday the 13th": (r"friday the 13th", r"friday the 13th", ""),
    "A Nightmare on Elm Street": (r"(?:a )?nightmare on elm street|freddy krueger",
                                  r"(a )?nightmare on elm street|freddy", ""),
    "Alien": (r"alien", r"alien( 3|: .*| resurrection| vs\.? .*)?$|aliens$|prometheus$", "the"),
    "Terminator": (r"terminator", r"(the )?terminator", "noun"),
    "The Matrix": (r"(?:the )?matrix", r"the matrix", "the"),
    "Twilight": (r"twilight", r"twilight$|the twilight saga", "the"),
    "The Hunger Games": (r"(?:the )?hunger games", r"the hunger games", ""),
    "Indiana Jones": (r"indiana jones", r"indiana jones|raiders of the lost ark", ""),
    "Die Hard": (r"die hard", r"(live free or |a good day to )?die hard", ""),
    "Lethal Weapon": (r"lethal weapon", r"lethal weapon", ""),
    "Back to the Future": (r"back to the future", r"back to the future", ""),
    "Home Alone": (r"home alone", r"home alone", "noun"),  # "tonight im home alone" is no wish
    "Despicable Me": (r"despicable me|minions", r"despicable me|minions$", ""),
    "Ice Age": (r"ice age", r"ice age", "the"),
    "Madagascar": (r"madagascar", r"madagascar|penguins of madagascar", "the"),
    "Kung Fu Panda": (r"kung fu panda", r"kung fu panda", ""),
    "Final Destination": (r"final destination", r"(the )?final destination", ""),
    "Paranormal Activity": (r"paranormal activity", r"paranormal activity", ""),
    "The Conjuring": (r"(?:the )?conjuring", r"the conjuring|annabelle|the nun$", "the"),
    "Insidious": (r"insidious", r"insidious", "the"),
    "Resident Evil": (r"resident evil", r"resident evil", ""),
    "The Purge": (r"(?:the )?purge", r"(the )?(first )?purge", "the"),
    "Planet of the Apes": (r"planet of the apes", r".*\bplanet of the apes", ""),
    "Bourne": (r"(?:jason )?bourne", r"the bourne|jason bourne", "noun"),
    "John Wick": (r"john wick", r"john wick", "noun"),
    "The Godfather": (r"(?:the )?godfather", r"the godfather", "noun"),
    "The Hangover": (r"(?:the )?hangover", r"the hangover", "the"),
    "Cars": (r"cars", r"cars( \d)?$", "the"),
    "American Pie": (r"american pie", r"american (pie|wedding|reunion)", ""),
    "Scary Movie": (r"scary movie", r"scary movie", "the"),
    "Men in Black": (r"men in black|mib", r"men in black", "noun"),
    "Ghostbusters": (r"ghostbusters", r"ghostbusters", "noun"),
    "Mad Max": (r"mad max", r"mad max", ""),
    "Pixar": (r"pixar", r"(toy story|a bug's life|monsters, inc\.|monsters university|finding (nemo|dory)|(the )?"
              r"incredibles|cars|ratatouille|wall-e|up|brave|inside out|the good dinosaur|coco)( \d)?$", ""),
    "Christmas": (r"christmas|xmas|x-mas", r".*\b(christmas|santa|grinch|scrooge)|elf$|love actually|the polar express|"
                  r"it's a wonderful life|miracle on 34th street|the holiday$|jingle all the way|scrooged|bad santa|"
                  r"four christmases|home alone$|the nightmare before christmas|klaus$|krampus", "noun"),
    "superhero": (r"super-?hero(?:e?s)?|comic[- ]book", r"(captain america|iron man|thor|(the )?(incredible )?hulk|"
                  r"ant-man|black panther|doctor strange|guardians of the galaxy|wonder woman|justice league|aquaman|"
                  r"deadpool|venom|fantastic four|daredevil|(the )?punisher|ghost rider|hellboy|blade( ii|: trinity)?$|"
                  r"green lantern|watchmen|suicide squad|captain marvel|kick-ass|the crow|spawn|catwoman|elektra)",
                  ""),  # and the films of `SUPERHERO`'s studios and series
}
# Named groups that are no series: one loved is asked for, not done with ("I love Pixar" wants Pixar films)
GROUPS = frozenset(["Pixar", "Christmas", "superhero"])
# What "superhero movies" covers: the comic-book studios' films and the superhero series
SUPERHERO = ("Marvel", "DC", "Batman", "Superman", "Spider-Man", "X-Men", "Wolverine", "Avengers")
_SERIES_NOUN = r"(?:movies?|films?|ones|series|franchise|saga|sequels|prequels|trilogy|flicks|universe|stuff)"
_FRANCHISE_WORD = [(re.compile(rf"\b(?:(?:the|an?) )?(?:{word})\b(?P<noun>\s+{_SERIES_NOUN}\b)?", re.I), name, need)
                   for name, (word, _, need) in FRANCHISES.items()]
# a series whose name is an ordinary word ("bond", "cars") needs a noun after it, or one of these before it
_FRANCHISE_CUE = re.compile(r"\b(no|not|nothing|without|any|more|hate|hated|love|loved|fan of|except|over|skip)\s+$",
                            re.I)
_FRANCHISE_TITLE = [(re.compile(rf"(?:{titles})", re.I), name) for name, (_, titles, _) in FRANCHISES.items()
                    if titles]


def franchises_of(title: str, studios: Collection[str] = ()) -> list[str]:
    """The `FRANCHISES` a title belongs to ("The Dark Knight Rises" -> ["Batman", "superhero"]); `studios`: its
    studio brands (Marvel's films are superhero films)."""
    names = [name for pattern, name in _FRANCHISE_TITLE if pattern.match(title)]
    return names + ["superhero"] if set(names + list(studios)) & set(SUPERHERO) else names


def franchise_mentions(text: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, name, said as a series) of each franchise `text` names, in text order; "said as a series" when
    "movies" / "films" / "ones" follow ("the batman ones", over the 1989 film the title alone names)."""
    found = []
    for pattern, name, need in _FRANCHISE_WORD:
        for m in pattern.finditer(text):
            series = bool(m.group("noun"))  # a noun after the name: "a scary movie" is no Scary Movie series
            if need == "the" and not ((series and m.group().lower().startswith(("the ", "a ", "an ")))
                                      or m.group()[0].isupper() or m.group()[4:5].isupper()):
                continue
            if need == "noun" and not (series or _FRANCHISE_CUE.search(text[:m.start()])):
                continue  # "bond with my kids", but "no bond please"
            found.append((m.start(), m.end(), name, series))
    return sorted(found)


# What a movie is about, as people ask ("something with vampires", "a boxing movie", "no sharks"): the name -> (the
# words people type, what the plot summary says). Read from the catalogue's plot summaries (5,939 of 6,281 movies),
# so a film whose summary does not say it is missed; wished for and ruled out as a studio or series is.
TOPICS: dict[str, tuple[str, str]] = {
    "vampires": (r"vampires?|dracula", r"vampires?|dracula"),
    "sharks": (r"sharks?", r"sharks?"),
    "dinosaurs": (r"dinosaurs?|dinos?", r"dinosaurs?"),
    "robots": (r"(?:giant )?robots?|androids?", r"robots?|androids?|cyborgs?"),
    "ghosts": (r"ghosts?|haunted houses?|hauntings?", r"ghosts?|haunted"),
    "witches": (r"witch(?:es|craft)?", r"witch(es|craft)?"),
    "pirates": (r"pirates?", r"pirates?"),
    "spies": (r"spy|spies|espionage", r"spy|spies|espionage|secret agent"),
    "boxing": (r"boxing|boxers?", r"boxing|boxers?|prize ?fight"),
    "baseball": (r"baseball", r"baseball"),
    "basketball": (r"basketball", r"basketball"),
    "football": (r"(?:american )?football", r"football"),
    "musicians": (r"musicians?|rock bands?|bands?|singers?", r"musicians?|rock band|singers?|band's"),
    "dogs": (r"dogs?|puppies|puppy", r"dogs?|pupp(y|ies)"),
    "horses": (r"horses?", r"horses?|racehorse"),
    "World War II": (r"world war (?:ii|2|two)|ww2|wwii|nazis?", r"world war ii|wwii|nazis?"),
    "Vietnam": (r"vietnam(?: war)?", r"vietnam"),
    "New York": (r"new york|nyc", r"new york|manhattan|brooklyn"),
    "high school": (r"high ?school", r"high school"),
    "weddings": (r"weddings?", r"weddings?"),
    "prison": (r"prisons?|jail", r"prison|jail|penitentiary"),
    "serial killers": (r"serial killers?", r"serial killers?"),
    "road trips": (r"road ?trips?", r"road trip|cross-country"),
    "dance": (r"danc(?:e|ing|ers?)|ballet", r"danc(e|ing|ers?)|ballet"),
    "journalists": (r"journalis(?:m|ts?)|reporters?", r"journalists?|reporters?"),
    "courtrooms": (r"courtrooms?|lawyers?|legal dramas?", r"courtroom|lawyers?|attorneys?|trial"),
    "space": (r"space|outer space|astronauts?|spaceships?", r"outer space|astronauts?|spaceships?|spacecraft|"
              r"space station|space shuttle|starships?|in space|into space|galactic|interstellar|galax(y|ies)|planets?"),
    "mafia": (r"mob|mafia|mobsters?", r"mafia|mob|mobsters?|crime family|cosa nostra|godfather"),
    "ghosts and demons": (r"supernatural|paranormal", r"supernatural|paranormal|demons?|demonic|possess(ed|ion)|"
                         r"ghosts?|haunt(ed|ing|s)?|evil spirits?|presence|entity|curse[ds]?|shape-?shifting"),
    "zombies": (r"zombies?", r"zombies?|undead"),
    "aliens": (r"aliens|extraterrestrials?|alien invasions?|ufos?", r"aliens?|extraterrestrials?|ufos?"),
    "heists": (r"heists?|robbery|robberies|bank robbers?", r"heists?|robbery|robberies|bank robbers?|rob (a|the) bank|"
               r"thieves|con artists?"),
}
_TOPIC = {name: re.compile(rf"\b(?:{plot})\b", re.I) for name, (_, plot) in TOPICS.items()}
_TOPIC_BEFORE = re.compile(r"\b(about|with|w/|involving|featuring|set in|no|not|nothing|without|any|some|more|less|"
                           r"love|loved|hate|hated)\s+(?:(?:a|an|the|some|any|more|real|giant|big|cute|scary)\s+){0,2}$", re.I)
_TOPIC_AFTER = re.compile(r"^\s*(movies?|films?|flicks?|ones|stories|story|themed|comed(y|ies)|dramas?|thrillers?)\b",
                          re.I)
_TOPIC_WORD = [(re.compile(rf"\b(?:{word})\b", re.I), name) for name, (word, _) in TOPICS.items()]


def topic_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, topic) of each `TOPICS` word in `text` that is said of a movie, in text order: after "about",
    "with", "no", "set in" ... or before "movies" / "films" ("a boxing movie"). Small talk is no request: "i work
    as a journalist", "my laptop is a dinosaur", "just back from vietnam"."""
    found = sorted((m.start(), m.end(), name) for pattern, name in _TOPIC_WORD for m in pattern.finditer(text))
    said: list[tuple[int, int, str]] = []
    for start, end, name in found:  # "w/ robots or aliens": a list goes on from a topic said of a movie
        if (_TOPIC_BEFORE.search(text[:start]) or _TOPIC_AFTER.match(text[end:])
                or (said and re.fullmatch(r"\s*(,|or|and|&|/)\s*", text[said[-1][1]:start]))):
            said.append((start, end, name))
    return said


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
    r"romance|romantic|rom[- ]?coms?|love stor(y|ies)|chick flicks?|rom[aá]ntic[ao]s?": "romance",
    r"animat(ed|ion)|cartoons?|pixar|anime|animad[ao]s?|dibujos": "animation",
    r"documentar(y|ies)|documentales?": "documentary",
    r"(?<!live )(?<!live-)action|superheroe?s?|super-heroe?s?|acci[oó]n": "action",  # "live action" is no genre
    r"thrillers?|suspense|suspenseful|suspenso": "thriller",
    r"dramas?|dramatic|tearjerkers?|tear-jerkers?": "drama",
    r"family-friendly|kid-friendly|family|kids|kiddie( stuff| movies?| films?)?|children": "family",
    r"fantasy|wizards?|dragons?": "fantasy",
    r"myster(y|ies)|whodunn?its?": "mystery",
    r"crime|heists?|gangsters?|mob movies?": "crime",
    r"war movies?|war films?|war": "war",
    r"westerns?|cowboys?|vaqueros?": "western",
    r"musicals?|singing and dancing|song and dance": "musical",
    r"adventures?|aventuras?": "adventure",
    r"biopics?|biograph(y|ies|ical)|true stor(y|ies)": "biography",
    r"sports?": "sport",
    r"film[- ]?noirs?|noirs?": "film-noir",
    r"music(?=\s+(?:documentar|docs?\b|movies?|films?|biopics?|dramas?))|music(al)? biopics?": "music",
    r"history (movies?|films?|dramas?)|historical( movies?| films?| dramas?| epics?)?|period (pieces?|dramas?)": "history",
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
