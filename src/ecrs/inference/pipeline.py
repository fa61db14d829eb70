"""One chat turn, end to end (ECR_SPEC §8): link entities in the user's text -> detect the user's emotion ->
update the conversation state (ECR's emotion attachment, memory of seen / disliked / recommended movies, stated
constraints) -> recommend -> reply (streamed).

    bot = EmpatheticRecommender.load()          # loads every artifact once, says what is missing
    state = ConversationState()
    for event in bot.turn_events(state, "I loved Titanic, but nothing too sad"):
        ...            # Understood (emotions, entities), Recommended (movies), ReplyPiece..., Done (whole reply)

`turn_events` is the one turn: the terminal chat, the JSON and the streaming endpoints, the simulator and the
latency benchmark all consume its events (`turn` collects them into a `TurnResult`).
"""
from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ecrs.data.catalogue import (
    FRANCHISES,
    GENRE_WORDS,
    GROUPS,
    STUDIOS,
    TOPICS,
    Movie,
    franchise_mentions,
    genre_mentions,
    load_catalogue,
    movielens_genres,
    topic_mentions,
)
from ecrs.data.kg import TITLE_QUALIFIER, KnowledgeGraph, load_redial_kg, person_entities
from ecrs.data.linking import STOPWORDS, Mention, build_redial_linker
from ecrs.data.prepare import load_samples
from ecrs.data.samples import Emotions, Sample
from ecrs.data.stance import STANCE_EMOTIONS, Span, Target, named_targets
from ecrs.emotions import kept_labels
from ecrs.errors import EcrsError
from ecrs.inference.generator import ResponseGenerator
from ecrs.inference.model_files import qwen_installed, resolve_base
from ecrs.inference.recommender import TrainedRecommender
from ecrs.inference.state import COMPOUND, ConversationState, Wish, genre_label
from ecrs.models.baselines import Popularity, Recommender
from ecrs.models.emotion import EmotionClassifier
from ecrs.models.stance import UNSURE, StanceModel, load_stance

MAX_MESSAGE_CHARS = 2000  # longer messages are truncated for the models (the API rejects them with a 4xx first)
# "something like X", "similar to X": a wish for movies like X (a plain "I like X" is an opinion, not this)
_LIKE_X = re.compile(r"(^\W*(just\s+)?like|\b(something|anything|movies?|films?|ones?|more|stuff|others?|else( is)?)\s+"
                     r"(just\s+)?like|"
                     r"\bsimilar to|\bsuch as|\balong the lines of|\bin the vein of|\bkind of like|\bstyle of|\bsame as|"
                     r"\b(same|similar)\s+(vibes?|feel(ing)?|energy|tone|style|mood|vein)\s+(as|to|of)|\bvibes?\s+(of|like)|"
                     r"\bin the spirit of|\breminiscent of|\bcomparable to|\b(à|a) la|\bala)\s*$", re.I)
# ... or after it: "forrest gump vibes", "a Pulp Fiction-esque movie", "Inception type of movie"; and "I loved
# Titanic, anything like it?" (a pronoun after the title points back to it)
_X_LIKE = re.compile(r"^(\s*-?\s*(vibes?|esque|type (of )?(movies?|films?|stuff|things?))\b|"
                     r"[^.!?]*\b(something|anything|movies?|films?|ones?|more|stuff|others?)\s+(just\s+)?"
                     r"(like|similar to)\s+(it|that|this|them|those)\b)", re.I)
# A stated mood is met, in words and in genres (a wish like any other, forgotten after MOOD_TURNS seeker turns):
# (pattern on the message with its titles and names cut out, genres, short label, what to say).
_FEELINGS = [
    (re.compile(r"\b(died|passed away|passing|funeral|grieving|grief|lost my (dog|cat|mom|dad|mother|father|grandma|"
                r"grandpa|grandmother|grandfather|friend|pet|wife|husband|job))\b", re.I),
     ["comedy", "animation", "family"], "something comforting", "I'm so sorry for your loss. Something gentle and comforting, then."),
    (re.compile(r"\b(angry|furious|pissed( off)?|so mad|really mad|fuming|frustrated|frustrating|annoyed|driving me "
                r"(crazy|nuts|insane|up the wall)|losing my mind)\b", re.I),
     ["action", "comedy"], "to let off steam", "Sorry, that sounds frustrating. Let's find something to let off steam."),
    (re.compile(r"\b(birthday|celebrat\w*|promot(ed|ion)|good news|great day|best day|engaged|graduat\w*)\b", re.I),
     ["comedy", "adventure", "animation"], "to celebrate", "Congrats, let's celebrate with something fun!"),
    (re.compile(r"\b(i'?m bored|so bored|bored out|boring day|nothing to do)\b", re.I),
     ["action", "adventure", "comedy"], "against boredom", "Bored? Let's fix that."),
    (re.compile(r"\b((?<!too )(?<!not )(?<!not so )(?<!nothing )(?<!that )(?<!less )(?<!no )sad(?!\s+(drama|movie|film|one|story|stories|ending|flick|romance))|depressed|feeling (kinda |kind of |a bit |a little |so |really |pretty )?(down|low|blue)|"
                r"dumped|i'?m down|rough time|(rough|bad|awful|terrible|crappy|shitty|crap|"
                r"horrible|lousy|tough|worst) (day|week|month)|"
                r"(day|week|month|year|work|school|today|life) (has been|'?s been|was|is|been) "
                r"(so |really |pretty |just |kind of |kinda |a bit |a little |such )?"
                r"(rough|bad|awful|terrible|crappy|shitty|crap|horrible|lousy|tough|hard|the worst|brutal|draining|"
                r"a (total |complete |bit of a |real )?(mess|disaster|nightmare|train ?wreck))|"
                r"(not|n'?t) (really |exactly |so |too )?feeling (great|good|well|my best)|"
                r"feeling (pretty |really |so |kinda |kind of |a bit )?(meh|crap|crappy|bad|awful|terrible|rough|lousy|like crap)|"
                r"today sucked|going wrong|lonely|upset|cheer me up|heartbr\w*|broke up|break ?up|crying|miserable|"
                r"gloomy|miss (him|her|them)|uplifting|melanchol\w*|nostalgic|homesick|heartsick|blue today)\b", re.I),
     ["comedy", "animation", "family"], "something cheerful",
     "Sorry you're having a rough time, let's find something to cheer you up."),
    (re.compile(r"\b(good cry|wanna cry|want to cry|make me cry|need to cry|tear-?jerkers?)\b", re.I),
     ["drama"], "something to cry over", "A good cry it is."),
    (re.compile(r"\b(so tired(?! of)|tired after|exhausted|stressed|stressful|nervous|anxious|anxiety|sick in bed|"
                r"feeling sick|the flu|relax|unwind|long day|long week|(don'?t|dont) (have|want) to think|"
                r"can'?t sleep|cant sleep|chill|cozy|cosy|laid-?back|mellow|heart-?warming|wholesome|"
                r"(something|an) easy( watch)?|easy to watch|brain off|mindless|nothing (too )?complicated|"
                r"something (light|lighthearted|light-hearted|feel-?good))\b", re.I),
     ["comedy", "animation", "family", "romance"], "to relax", "Sounds like you need to relax and unwind."),
]
# Tones asked of the movie, not feelings of the person ("nah, something darker" still reacts to the last picks);
# last: a feeling named with them is met first ("stressed, need something light")
_TONES = [
    (re.compile(r"\b(darker|grittier|bleaker|edgier)\b|"
                r"(?<!not )(?<!too )(?<!so )(?<!that )(?<!very )(?<!pretty )(?<!anything )\b(?:something|a|more|bit|little|"
                r"kinda|kind of|really|nice and)\s+(dark|gritty|bleak|edgy|disturbing|twisted|brooding)\b"
                r"(?!\s+(outside|in here|out|already|mood|day|week|place|times?|knight|nite|night|tower|side|phoenix|shadows|"
                r"waters|city|crystal))|"
                r"(?<!not )(?<!no )(?<!too )(?<!so )(?<!pretty )(?<!anything )\b(dark|gritty|bleak|edgy|disturbing|twisted)\s+"
                r"(movies?|films?|ones?|thrillers?|comed(y|ies)|dramas?|stories|story|tone|vibes?)\b", re.I),
     ["thriller", "crime", "mystery"], "something dark", "Something darker, then."),
    (re.compile(r"\b(not in the mood for (anything |something )?(too )?(sad|heavy|depressing|dark|intense|serious)|"
                r"(not|no|less) (too |so |that |very )?(sad|heavy|depressing|dark|intense|serious)|nothing (too |so )?(sad|heavy|"
                r"depressing|dark|intense|serious)|feel[- ]?good|feelgood|lighter|something light|light-?hearted|something fun|"
                r"a fun (one|movie|film))\b",
                re.I),
     ["comedy", "animation", "family"], "something light", "Something light, then."),
]
_MOODS = _FEELINGS + _TONES
# a second tone joined to a first one describes the film: "funny but also a bit sad", "light and a little sad"
_TONE_PAIR = re.compile(r"\b(funny|comedy|comedic|romantic|scary|light|heartwarming|sweet|uplifting|happy|dark|quirky)\b"
                        r"[^.!?]{0,12}\b(but|and|yet)\s+(also\s+)?(a (bit|little|touch)( bit)?\s+|kinda\s+|slightly\s+)?$", re.I)
MOOD_TURNS = 3
# a mood's picks are none of these either: a good cry is no comedy, a light or relaxing evening no tragedy
_MOOD_NOT = {"something to cry over": ("comedy", "family", "animation"),
             **{label: ("drama", "war", "thriller", "crime") for label in ("something cheerful", "to relax",
                                                                         "something light")}}
# IMDb files La La Land and Mamma Mia! under "music", not "musical": who rules out musicals rules them out too
_ALSO_AVOIDED = {"musical": ("music",), "family": ("animation",)}  # "no kids movies": no Boss Baby either
_WITH_THEM = re.compile(r"(?<!not )(?<!nothing )\b(?:with|starring|by)\s+(?:him|her)\b(?!\s+(?:in it\s+)?(?:again|either))", re.I)
_NOT_THEM = re.compile(r"\b(?:(?:not|isn'?t|nothing) (?:directed |made )?(?:by|from)\s+(?:him|her|them)\b|(?:he|she|they) "
                       r"didn'?t (?:direct|make)\b|(?:isn'?t|not) (?:his|hers|theirs|one of his|one of hers)(?: own)?"
                       r"(?: (?:films?|movies?|stuff|work))?\s*(?:[.!?,]|$))|"
                       r"\b(?:not|no|without|skip|enough(?: of)?|tired of|sick of|done with|over|nothing with|not with|"
                       r"no more(?: of)?|less of|nothing of|(?:do ?n'?t|do not|never) (?:like|love|want|care for)|"
                       r"can'?t stand|cannot stand|hate|dislike|not a fan of|not into)\s+(?:him|her)\b", re.I)
_NOT_ANY_OF_THEM = re.compile(r"\b(without|no|not with|nothing with)\s+(either|both|any|all)\s+of\s+them\b|\bneither of them\b",
                              re.I)
_WITH_PERSON = re.compile(r"\s*('s\s+)?((movies?|films?|ones?|stuff)\s+)?(with|starring|featuring|w/?)\s+", re.I)
_THAT_DIRECTOR = re.compile(r"\b(by|from)\s+(that|the same|this|the)\s+(director|filmmaker|guy|person|woman|man|dude|directors|"
                            r"people|team)\b|\bsame director\b|\bthat director\b|\b(did|has) (that|the|this) director\b|"
                            r"\bsame guys? who directed\b", re.I)
_GROUP = re.compile(r"(?:The )?([A-Z]\w+?)(?:s| brothers| Brothers| sisters| Sisters)")  # "Coen brothers", "The Wachowskis"
_EITHER_OF_THEM = re.compile(r"(?<!without )(?<!not with )(?<!no )\b(with|starring|by)\s+(either|both|one|any)\s+of\s+them\b|"
                             r"(?<!without )(?<!not )\beither of them\b", re.I)
# someone who scares easily rules out horror without naming it
_WIMP = re.compile(r"\b(wimp|scaredy[- ]?cat|scare easily|easily scared|too scared|get(ting)? nightmares|give me nightmares|"
                   r"(a|such a|big) chicken)\b", re.I)
# a person added to the one asked for: "with de niro from him", "with him and paul rudd", "with bradley cooper too"
_ALSO_PERSON = re.compile(r"\b(too|also|as well|from (him|her|them)|by (him|her|them)|with (him|her|them) and|(him|her|them) "
                          r"and|(he|she|they)('s| is| are) with|and with|plus)\b", re.I)
# a person named as a style to follow ("similar but not by him", "that energy", "tarantino-ish"), `_remember`
_THEIR_STYLE = re.compile(r"\b(similar|like (his|her|their)|in (that|his|her|their) style|(same|that) (vibe|energy|feel|"
                          r"style|tone)|in the style)\b|\w-?(ish|esque)\b", re.I)
_STYLE_FILMS = 30  # of their films, the most a style wish keeps
_FORMS = ("animation", "documentary")  # not a tone but a form: a film "like" one shares it, or its absence
_STYLE_MIN = 3  # more anchors than this are a body of work: matched on its usual genres and regulars
# chat words ReDial's vocabulary lacks: "meh" and "nah" are reactions, not gibberish
_CHAT_WORDS = {"meh", "nah", "naw", "nope", "thnx", "thanx", "thx", "idk", "ugh", "bleh", "pls", "plz", "nvm", "hmm",
               "ehh", "lol", "lmao", "omg", "tbh", "ngl", "imo", "tho"}
_ARTICLE = re.compile(r"^(the|a|an)\s+")
_GENRES = set(GENRE_WORDS.values())  # genres proper, not the studios and series ruled out as genres are
_DECADES = re.compile(r"\b((?:19|20)\d0s|'?\d0s)\s*(?:or|and|to|through|-|–|/)\s*(?:the\s+)?((?:19|20)\d0s|'?\d0s)\b",
                      re.I)
# "any decade is fine", "forget the 90s thing": the era wish goes; "any actor" the person wish
_ANY = {"era": re.compile(r"\bany (decade|year|era|time)s?\b|\b(decade|year|era) (doesn'?t|does not) matter|"
                          r"\b(forget|scratch|never ?mind|ignore|drop) (about )?the (\w+ )?(decades?|years?|era|'?\d0s)\b", re.I),
        "person": re.compile(r"\bany (actor|actress|director|star|cast)\b", re.I),
        # "forget the cheering up": the mood wish goes
        "mood": re.compile(r"\b(forget|scratch|never ?mind|ignore|drop) (about )?the (cheer(ing)?( me)? up|mood|light|cheerful|"
                           r"feel-?good|relax(ing)?|chill)( (thing|part|stuff|bit))?\b", re.I)}
# Years wanted: "after 1995", "2015+", "from the 90s onward", "nothing older than 2000" (from); "before 1980",
# "older than 1990", "nothing after 2010" (until); "the 80s", "1990s", "90s movies", "a 90s crime movie" (that
# decade; a bare "30s" is an age).
_WHEN = r"((?:19|20)\d\ds?|'?\d0s)"
_YEAR_FROM = re.compile(
    rf"\b(?:after|since|newer than|later than|(?:nothing|not|no) older than|made after|post)\s+(?:the\s+)?"
    rf"(?:year\s+)?{_WHEN}"
    rf"|\b{_WHEN}\s*(?:\+|or (?:later|newer|after)|onwards?|on\b|and (?:up|later|newer|after))", re.I)
# "a good movie from 2015": that year ("from 2015 on" is `_YEAR_FROM`'s)
_ONE_YEAR = re.compile(r"\b(?:from|released in|came out in|made in|out in)\s+(?:the\s+)?(?:year\s+)?((?:19|20)\d\d)\b(?!s)",
                       re.I)
_YEAR_UNTIL = re.compile(rf"\b(?:before|older than|earlier than|prior to|pre)[\s-]+(?:the\s+)?{_WHEN}", re.I)
# "nothing after 2010" bounds from above, "nothing before 1990" from below (`_era` reads these first)
_NEGATED_YEAR = re.compile(rf"\b(?:nothing|not|no|none)\s+(?:made\s+|released\s+|from\s+)?(after|since|newer than|"
                           rf"later than|before|earlier than|older than)\s+(?:the\s+)?(?:year\s+)?{_WHEN}", re.I)
_DECADE = re.compile(r"\b(?:the|from the|in the|make it|go with|how about|what about|let'?s do|lets do|maybe|only)\s+"
                     r"((?:19|20)\d0s|'?\d0s)\b|\b((?:19|20)\d0s)\b"
                     r"|\b((?:19|20)\d0s|'?\d0s)\s+"
                     r"(?:[a-z-]+\s+){0,2}?(?:movies?|films?|flicks?|classics?|stuff|comed\w*|horror|action|"
                     r"romance|thrillers?|crime|drama|sci-?fi|westerns?|war|mystery|musicals?|animated|family|"
                     r"kids|adventure|fantasy|documentar\w*|rom-?coms?)\b"
                     # a decade said on its own: "older please, 90s", "something like 80s?", "80s maybe"
                     r"|\b(?:like|any|some|older|prefer(?:ably)?|ideally|or)\s+('?[5-9]0s)\b"
                     r"|(?:^|,\s*)('?[5-9]0s)\b(?=\s*(?:[?!.,]|$|maybe|please|pls|plz|or so|ish|era|vibes?|then))"
                     # or after the kind of movie: "drama 90s", "something 80s and cheesy"
                     r"|\b(?:movies?|films?|comed(?:y|ies)|horror|action|romance|thrillers?|crime|dramas?|sci-?fi|"
                     r"westerns?|war|mystery|musicals?|animated|family|adventure|fantasy|rom-?coms?|something|"
                     r"anything)\s+('?[5-9]0s)\b"
                     # "90s only", "tom cruise 80s": alone at the end
                     r"|\b('?[5-9]0s|(?:19|20)\d0s)\s+only\b|\b('?[5-9]0s)(?=\s*[?!.]*\s*$)", re.I)
# a year or decade ruled out: "nothing from the 80s", "not 90s stuff", "isnt from the 2000s", "hates pre-2000"
_ERA_NOT = re.compile(r"\b(not|nothing|no|none|isn'?t|isnt|aren'?t|wasn'?t|never|hates?|hated|without|except|skip|avoid|"
                      r"anything but|(?:do ?n'?t|do not) (?:want|like))\b(?:\s+(?:from|in|made|released|of|the|too|so|"
                      r"really|anything|stuff|movies?|films?|one|ones|that'?s|thats|is|are|old|older))*\s*[-\s(]*$", re.I)
# What follows a title in its sequels' titles: "John Wick: Chapter 2", "Rocky II", "Toy Story 3", "Saw Part 2"
_SEQUEL = r"(:|\s+(\d+|[IVX]+|part|chapter)\b)"
# A genre said as a kind of movie: "a comedy", "a thriller", but "a horror movie", "an animated movie"
_AS_NOUN = {g: g for g in ("comedy", "drama", "thriller", "western", "musical", "romance", "mystery", "documentary",
                           "fantasy", "adventure")} | {"animation": "animated movie", "biography": "biopic"}
# Genre words that name a kind of the genre, not all of it: ruling one out keeps a wish for the genre ("horror, but
# no slashers"); "nope, too scary" rules horror out
_SUBKIND = re.compile(r"slasher|zombie|jump|gor[ey]|superhero|super-hero|anime|cartoon|kid|children|heist|gangster|"
                      r"mob\b|wizard|dragon|space|time|chick|tear|rom-?com|true stor|biopic|pixar|cowboy", re.I)
_REACTION = re.compile(r"\b(seen|watched|saw|loved|liked|hated|disliked|boring|meh|not that one|nah)\b", re.I)
_MORE_OF = re.compile(r"funnier|scarier", re.I)
_LISTED = re.compile(r"^\s*(,|/|&|or|and|,\s*or|,\s*and|and/or|or even)\s*$", re.I)
_ADJACENT = re.compile(r"[\s-]+")  # nothing but space or a hyphen between two genre words
_ALSO = " Also worth a look: "  # the reply's list of the other picks
_WORD = re.compile(r"[^\W\d_]+")
_COMPLAINT = re.compile(r"\b(you'?re|you are|ur|this is|that'?s|these are|those are|they'?re)\s+(so |really |pretty |all )?"
                        r"(useless|terrible|awful|bad|rubbish|garbage|trash|not helpful|no help|dumb|stupid)\b|"
                        r"\b(terrible|awful|bad|lousy|crap|rubbish|useless) (suggestions|picks|recommendations|recs)\b|"
                        r"\bwhy (do|would) you keep (suggesting|recommending|showing|picking)\b|"
                        r"\bstop (suggesting|recommending|showing) (these|those|that|them)\b|\bnot what i (asked|wanted)\b",
                        re.I)
_ABOUT_ME = re.compile(r"\bare you (a |an )?(robot|bot|human|ai|real|person|machine|chatbot)\b|\bwho are you\b|"
                       r"\bhow are (you|u)\b|\bhow'?s (it going|your day)\b|\bwhat'?s your fav(ou?rite)? (movie|film)\b",
                       re.I)
_BARE_REQUEST = {"or", "and", "a", "an", "the", "maybe", "please", "pls", "plz", "some", "something", "either", "any",
                 "movie", "movies", "film", "films", "one", "perhaps", "ok", "okay", "hmm",
                 "is", "are", "fine", "good", "works", "would", "be", "great", "cool", "i", "guess", "too", "also",
                 "together", "both", "by", "directed", "starring", "with", "w", "featuring"}
_CHAT_ACTION = re.compile(r"\b(explosions?|explosive|shoot-?outs?|car chases?|gunfights?|fight scenes|martial arts|"
                          r"kung fu|karate)\b", re.I)
_BUT_ALSO = re.compile(r"\s*,?\s*(but|yet|but also|and also)\s+(also\s+)?(a\s+(bit|little)\s+)?", re.I)  # "romantic but funny"
_BUT_ALSO_OPENING = re.compile(r"^\W*(but|and|also|maybe|ideally|preferably|oh and)\s+(also\s+)?(a\s+bit\s+|kinda\s+|"
                               r"more\s+|something\s+)?$", re.I)
_RESET = re.compile(r"\b(start (over|again|from scratch)|from scratch|reset|forget (everything|all of (it|that)|all that))\b",
                    re.I)
# what a violent film is, for "nothing with violence" (the catalogue has no content ratings): its kinds
_VIOLENT = ("action", "war", "crime", "horror", "thriller")
_VIOLENCE = re.compile(r"\b(violen(ce|t)|bloodshed|brutal(ity)?|shoot-?outs?|gun ?fights?)\b", re.I)
# two kinds wanted as one movie: "both", or each wanted by one of a couple ("she wants a romance, i want action")
# someone choosing with the person: "my wife", "she"
_PARTNER = r"she|he|my (?:wife|husband|partner|girlfriend|boyfriend|gf|bf|hubby|wifey|spouse|fianc[eé]e?|date"
_BOTH = re.compile(rf"\b(both|mix(ed)?( of)?|blend( of)?|combin\w+|at the same time|in one)\b|"
                   rf"\b({_PARTNER}|roommate|friend|mom|dad))('?s| is| wants?| likes?| loves?| prefers?)\b", re.I)
# between two genre words, one movie with both: "funny and scary", "an action movie with some romance"
_WITH_SOME = re.compile(r"(-?(y|ish))?(\s+(movie|film|flick)s?)?\s+((but|and)\s+(also\s+)?)?(and|&|plus|with|based on|with (some|a (bit|"
                        r"little|touch|dash|lot) of|lots of|plenty of|a little))\s+(a\s+)?", re.I)
_BLACK_AND_WHITE = re.compile(r"\bblack[- ](and|&|n)[- ]white\b|\bb ?& ?w\b", re.I)
_SILENT = re.compile(r"\bsilent (movie|film|era|comed(y|ies))s?\b", re.I)
# What people ask for that the catalogue cannot tell: said plainly rather than silently ignored
_CANT_FILTER = [
    (re.compile(r"\b(for (a|my|an?) \d+[- ]year[- ]old|age rating|rated (pg|r)\b|ok for (kids|children)|on netflix|streaming|"
                r"where (can|to) (i )?watch)", re.I),
     "I can't check age ratings or where it streams."),
    (re.compile(r"\b(gore|gory|bloody|gruesome)\b", re.I),
     "I can't tell how gory a film is, so check before you press play."),
    (re.compile(r"\b(under|less than|shorter than|no longer than|max|at most)\s+(an? |\d+\s*)(min\w*|hours?|hrs?)\b|"
                r"\b(short|quick)(er)? (movie|film|one)s?\b|\bnot too long\b|\brun ?time\b|\bhow long\b|"
                r"\b(is|was) (it|the \w+ one) (too )?long\b", re.I),
     "I can't check running times yet, so mind the length."),
]
_NO_APOSTROPHE = re.compile(r"\b(don|can|won|didn|doesn|isn|wasn|aren|weren|haven|hasn|shouldn|wouldn|couldn)(t)\b", re.I)
_BARE_NO = re.compile(r"^\W*(no+|nope|nah+|meh|pass|next|not really|no thanks|no thank you|nah thanks)\W*$", re.I)
# "like ex machina" with no title linked: asks for what is like a film we lack, no reaction to the picks
_LIKE_OTHER = re.compile(r"^\W*(something |anything |more |movies? |films? )?(like|similar to|in the vein of)\s+(?!(it|that|"
                         r"this|those|them|these|the (first|second|third|last|other|\w+ one))\b)\w", re.I)
# a kind said mildly: "scary but not too scary" neither asks for horror nor lifts a ban on it
_NOT_TOO = re.compile(r"\bnot (too|that|very|overly|super|so)\s+$", re.I)
_OR_NOR = re.compile(r"\s*[,.;]?\s*(or|nor|or any|or the|neither is|neither are|nor is|nor are|same (goes )?for|and no|and not)\s+",
                     re.I)
_NEITHER_END = re.compile(r"[,.;]\s*(and\s+)?(neither|nor|same (goes )?for)( is| are| do i like| for)?\s+$", re.I)
_EITHER_AFTER = re.compile(r"\s*(movies?|films?|stuff)?\s*(either|neither)\b", re.I)  # "no drama either"
_OR_MORE = re.compile(r"^\W*(or|nor|and no|and not|also no|also not|neither|or any)\b", re.I)
_BANNED = re.compile(r"\b(no|not|nothing|without|don'?t|dont|do not|can'?t stand|hate|dislike|none)\b", re.I)
_NAY = re.compile(r"\b(no|nah|nope|not|none|meh|bad|boring|pass|seen)\b", re.I)
_HATE_RIGHT_BEFORE = re.compile(r"(?<!n't )(?<!not )(?<!dont )(?<!never )(?<!wouldn't )\b(hate|hated|despise|detest|dislike|"
                                r"disliked|loathe|can'?t stand|cannot stand)\s+(?:(?:the|all|any|most|those|these|such)\s+)?$",
                                re.I)
_LIKE_RIGHT_BEFORE = re.compile(r"(?<!n't )(?<!not )(?<!dont )(?<!never )\b(i|we)('d|\s+would)?\s+(really\s+|totally\s+)?(loved|liked|"
                                r"enjoyed|adored|love|like|adore|prefer)\s+(the\s+)?$", re.I)
# another person's taste right before a genre, said while choosing together: "my wife likes horror" wants horror
_THEIRS_RIGHT_BEFORE = re.compile(rf"\b({_PARTNER}))( really)? (likes|loves|wants|prefers|is into|'s into)\s+(a |an |some )?$",
                                  re.I)
# right before a name, words that ask for it: "movies directed by christopher nolan", "a bit of suspense", "tom
# hanks but a comedy" (which the stance reader left unread, or read as ruled out)
_BY_RIGHT_BEFORE = re.compile(r"\b(directed by|by|starring|with|w/?|featuring|ft\.?)\s+(both\s+|either\s+)?$", re.I)
_SOME_RIGHT_BEFORE = re.compile(r"(?<!nothing )(?<!no )(?<!not )(?<!without )\b(with|want|like|need|and|but)\s+(a (bit|little|"
                                r"touch|dash|lot) of|some|lots of|plenty of|a little)\s+$", re.I)
_FINE_WITH_RIGHT_BEFORE = re.compile(r"\b(fine|ok|okay|cool|good|happy|down|open)\s+(with|to|for)\s+(some\s+|a\s+)?$", re.I)
_TURN = re.compile(r"\b(but|however|though|still|anyway)\b", re.I)
_HATE_AFTER = re.compile(r"\s*(movies?|films?|stuff)?\s*(scares? me|bores? me|makes? me (cringe|sick)|gives? me nightmares|"
                         r"(is|are) (not|n'?t) (for me|my thing|my cup of tea)|(isn'?t|aren'?t|isnt|arent) (for me|my thing|"
                         r"my cup of tea)|(is|are) (boring|overrated|the worst)|suck|sucks)\b", re.I)
# a clause already negative or ruling out: "nothing with a bit of romance", "anything but a horror", "not ok with"
_NEGATED_CLAUSE = re.compile(r"\b(no|not|nothing|without|don'?t|do not|doesn'?t|never|hate|can'?t|cannot|avoid|skip|anything "
                             r"but|everything but|all but|except|less|won'?t|isn'?t|aren'?t|nor)\b(?:(?!\bbut\b)[^.,;!?])*$", re.I)
_BUT_RIGHT_BEFORE = re.compile(r"\b(but|yet)\s+(make it\s+|also\s+)?(a|an|some|more)\s+$|\bonly\s+(a\s+|some\s+)?$", re.I)
# "like fargo but funny": a bare "but <kind>" closing the message asks for it
_BUT_BARE = re.compile(r"\b(but|yet)\s+(make it\s+|also\s+|more\s+)?$", re.I)
_ENDS = re.compile(r"\s*(ones?|movies?|films?|flicks?|please|pls|too|though|tho|instead|this time|for once)?\s*[.!?]*\s*$",
                   re.I)
# a pick pointed at as the model for more: "more like the second one", "anything similar to that one?"
_LIKE_PICK = re.compile(r"\b(more|something|anything|others?|ones?|stuff|films?|movies?)\s+(just\s+)?(like|similar to)\s+"
                        r"(the\s+\w+(\s+one)?|that( one)?|this( one)?|it|those|them)\b", re.I)
_FIGURATIVE = re.compile(r"\s+(at|of|in)\s+(work|home|school|the office|office|errors|my|our|his|her|their|life|the house|"
                         r"the family)\b", re.I)
_PRAISE = re.compile(r"\b(lov\w*|like[ds]?|great|good|nice|cool|awesome|perfect|amazing|sounds|looks|fun|interesting|yes+|"
                     r"yeah|yep|yup|sure|ok|okay|fine|enjoy\w*|fav\w*|classic|best|brilliant|excellent|fantastic|"
                     r"wonderful|ooh+|dope|sick|lit|fire|solid|keen|into)\b|<3|[❤😍👍🔥]", re.I)
_PAN = re.compile(r"\b(hate[ds]?|awful|terrible|boring|bored|sucked|sucks|bad|worst|didn'?t like|did not like|not a fan|"
                  r"disliked|crap|trash|garbage|rubbish|overrated|dumb|stupid)\b", re.I)
_DONE_FOR_NOW = re.compile(r"\b(i'?m|im|we'?re|were) (good|fine|ok|okay|set|all set)( for now| thanks| thx|$)", re.I)
_NEG_WORD = re.compile(r"\b(no|not|nothing|without|don'?t|dont|never|hate|sick of|tired of|can'?t stand|dislike|avoid|skip)\b",
                       re.I)
_CLAUSE_BREAK = re.compile(r"[,;.!?]|\b(but|though|however|although)\b", re.I)
_MORE_ONLY = re.compile(r"\W*((ok(ay)?|cool|hmm+|sure|nice|great|thanks|thx)\W+)?(another( one)?|one more|more|next|"
                        r"others?|any others?|anything else|something else|(show|give) me (more|another( one)?)|"
                        r"more (options|picks|please))\W*(please|pls|plz)?\W*", re.I)
_NO_RIGHT_BEFORE = re.compile(r"\b(no|not|without|anything but|except)\s+(?:the\s+|a\s+|any\s+|more\s+)?$", re.I)
_OWNED = re.compile(r"[\s-]+|'s\s+|’s\s+")  # "Adam Sandler comedies", "Sandler's comedies"
_PEOPLE_NOUN = re.compile(r"family", re.I)  # "my family hated it" ("my kids" is `_KIDS`'s: no cue around it)
_KIDS = re.compile(r"kids?|children", re.I)
_FOR_KIDS = re.compile(r"\b(for|with|no|not|without|nothing|than|of|any|some|more|hate|love|like)\s+(the\s+|my\s+|our\s+|little\s+"
                       r"|young\s+|small\s+)?$", re.I)
_KIDS_NOUN = re.compile(r"^['’]?s?\s*(movies?|films?|flicks?|stuff|shows?|friendly|-friendly|ones?|things?)\b", re.I)
_MY = re.compile(r"\b(my|our)\s+$", re.I)
_NO_SLASH = re.compile(r"\b(no|not|without|nothing)\s+[\w'-]+\s*/\s*$", re.I)
_ADJECTIVE = re.compile(r"funny|hilarious|scary|creepy|spooky|romantic|dramatic|suspenseful", re.I)
_COPULA = re.compile(r"\b(is|isn'?t|was|wasn'?t|are|aren'?t|were|weren'?t|'s)\s+(not\s+)?(that\s+|very\s+|even\s+|really\s+|"
                     r"so\s+|remotely\s+|particularly\s+)?$", re.I)
_SEEN_ALL_BEFORE = re.compile(r"\b(seen|watched|saw)\s+(all|every|each|both|everything)?\s*(of\s+|by\s+|from\s+)?"
                              r"(the\s+)?$", re.I)
_SEEN_ALL_AFTER = re.compile(r"^\W*((i|we)\s*('ve|have)?\s+)?(already\s+)?(seen|watched|saw)\s+(them|those|it|all|every)",
                             re.I)
# every film of a series seen, said of a title: "not john wick, seen all of those", "seen every rocky movie"
_ALL_SEEN_AFTER = re.compile(r"^[^.!?]{0,40}?\b(seen|watched|saw)\s+(them all|em all|'em all|all of (them|those|em|'em)|all|"
                             r"every (one|single one|movie|film)|the whole (series|franchise|thing|lot))\b", re.I)
_ALL_SEEN_BEFORE = re.compile(r"\b(seen|watched|saw)\s+(all|every)\s+(of\s+)?(the\s+)?$", re.I)
_TAKE_BACK = re.compile(r"\b(never ?mind|nevermind|forget(?: about)?|scratch|ignore)\s+(?:about\s+)?(?:(?:what|everything) i said "
                        r"about\s+)?(?:the\s+)?$", re.I)
_THING = re.compile(r"^\s*(thing|part|idea|bit|request)\b", re.I)
_FINE_NOW = re.compile(r"^\s*(?:'s|is)\s+(?:actually\s+)?(?:ok|okay|fine|alright|all right)(?:\s+(?:now|actually|after all|"
                       r"i guess))?\s*(?:[.!,]|$)", re.I)
_ORD = r"(first|1st|second|2nd|third|3rd|last|middle)"
_MORE_ORDINALS = re.compile(rf"^(?:\s*(?:one|ones)?\s*(?:,|and|&|or|\+)\s*(?:the\s+)?{_ORD})", re.I)
_ORDINAL = re.compile(rf"\bthe\s+{_ORD}(?:\s+(two|2))?\b|\b{_ORD}\s+(?:one|pick|suggestion|movie|film)\b", re.I)
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "last": -1}
_PLURAL = re.compile(r"\b(them|those|these|all|any of|none of|both|either|everything|every one)\b", re.I)
_GREETING = re.compile(r"^\W*(hi|hello|hey|hiya|yo|good (morning|evening|afternoon)|howdy)\b[\W\w]{0,20}$", re.I)
_THANKS_WORDS = r"thanks?|thank (you|u)|thx|thnx|thanx|ty|cheers|merci|gracias|danke|appreciate (it|that|you)"
# taking a pick: "perfect", "that works", "i'll watch that one" (a liked reaction, and a close)
_TAKING_WORDS = (r"perfect|lovely|(sounds|looks) (good|great|perfect|fun|amazing|awesome|nice|cool|interesting)|"
                 r"that'?s (good|great|perfect)|that works|"
                 r"(i'?ll|i will|we'?ll|gonna|going to|i'?m gonna|let'?s) (watch|go with|try|take|check out|do) "
                 r"(it|that|this|the \w+( one)?)|(taking|watching|going with) (it|that|this)|(it|that|one) it is|deal|"
                 r"i'?m sold|sure,? why not|yes please|that'?s (fine|it)|i shall watch")
# a pick named by its place and nothing else: "the first one please", "ok the second"
_PICKED = re.compile(r"^\W*(?:(?:ok(?:ay)?|cool|alright|hmm+|yes|yeah|yep|thanks?|thx|great)\W+)?(?:(?:the )?(?:first|second|third|1st|2nd|3rd)"
                     r"(?: one)?|that one|the last one)(?: please| pls| then| it is)?\W*(?:(?:thanks?|thx|bye)\W*)?$", re.I)
# a verdict on a film that names it ("seen parasite", "hated the sequels"), not one pointing back at the picks
_OTHER_FILM = re.compile(r"\b(seen|watched|saw|loved|hated|liked|disliked|enjoyed)\s+(?!(?:it|that|this|them|those|these|"
                         r"all|both|every\w*|one|either|any|none|already|before|yet|too|twice|once|so|really|lol|"
                         r"the (?:first|second|third|last|other|one|two|three|1st|2nd|3rd|middle|latter|former)|"
                         r"(?:first|second|third|last|1st|2nd|3rd)|a (?:couple|few|bunch|lot)|most|some|plenty|"
                         r"many|em|'em)\b)[a-z0-9]", re.I)
_UNDECIDED = re.compile(r"\b(think about it|maybe later|not sure|dunno|don'?t know yet|we'?ll see)\b", re.I)
_SEEN_WORDS = re.compile(r"\b(seen|watched|saw)\b", re.I)
_TAKING = re.compile(rf"\b({_TAKING_WORDS})\b", re.I)
_CLOSING = re.compile(rf"\b({_THANKS_WORDS}|bye+|goodbye|good ?night|see (you|ya)|cya|ttyl|gotta go|g2g|peace out|"
                      rf"that'?s all|au revoir|adios|talk later|(?:^|\W)nigh?te?\W*$|(gonna|going to|off to|heading to) bed|"
                      rf"(i'?m|im) good for now|"
                      rf"{_TAKING_WORDS})\b", re.I)
# done asking, in words that would otherwise read as a request ("more", "anything"): "no more recs needed",
# "not looking for anything else", "ok stop lol, I have more than enough options now"
_DONE = re.compile(r"\bno more (recs|recommendations|suggestions|picks|options)\b|\bnot looking for anything (else|more)\b|"
                   r"\b(more than )?enough (options|picks|recs|recommendations|suggestions)\b|^\W*(ok(ay)?\W+)?stop\b|"
                   r"\bthat'?s all i (need|needed|wanted)\b", re.I)
_THANKS = re.compile(rf"\b({_THANKS_WORDS})\b", re.I)
# A question about a movie, answered from the catalogue (`answer`) rather than with new picks
_QUESTION = re.compile(r"^\W*(?:(?:ok(?:ay)?|so|and|hmm+|wait|oh|also|btw|um+|lol)\W+)*(?:(?:could|can|might|would) you "
                       r"tell me|what year|how old|what'?s|whats|wats|what is|what was|"
                       r"tell me (?:more )?about|who'?s|who is|who was|who stars|who plays|who directed|who made|"
                       r"who wrote|who writes|who directs|what genre|what kind of (?:movie|film)|is|was|how'?s|how is|how was|how long|"
                       r"when (?:was|is|did)|does|did|any good|"
                       r"(?:what|how) about)\b", re.I)
_QUESTION_TAIL = re.compile(r"^\s*(?:in|of|about)\s+|\s+(?:about|like|any good|good)\W*$", re.I)
_PLACE = re.compile(r"^\W*(?:(?:ooh?|hmm+|ok(?:ay)?|so|and)\W+)*(?:the\s+)?(?:first|second|third|last|1st|2nd|3rd)"
                    r"(?:\s+one)?\b(?=\s+(?:is|was|does|did|who|what)\b)", re.I)  # "the first one is it funny?"
_EARLIEST = re.compile(r"\bfirst (one|movie|film|thing|pick) you (suggested|recommended|said|mentioned)\b.{0,25}"
                       r"\b(at (the )?(very )?(start|beginning)|at first|earlier|before|originally|in the beginning)\b",
                       re.I)
_WANT_TO_WATCH = re.compile(r"^\W*(?:i|we)\s+(?:want to|wanna|would like to|'?d like to|feel like)\s+(?:re)?(?:watch|see)\s+"
                            r"(?=\w)", re.I)
_TELL_ME = re.compile(r"^\W*(?:(?:could|can|might|would) you )?tell me (?:more )?(?:about|what|who)\b", re.I)
# a question without its "?": "who's in the second one", "what's the first one about", "what year is it"
_STRONG_QUESTION = re.compile(r"^\W*(?:(?:ok(?:ay)?|so|lol|and|hmm+)\W+)*(?:who'?s|who is|who stars|who plays|"
                              r"who directed|who directs|who wrote|who writes|who made|what genre|what kind of (?:movie|film)|"
                              r"what'?s|whats|wats|what is|what year|how old|when (?:was|did))\b", re.I)
_ASKS_FOR = re.compile(r"\bwhat'?s (like|similar)|\bwhat'?s (a|an|some) (good|great|fun|decent)\b|\bwhats like|\bwhat is (like|similar)|\b(recommend|suggest|another|else|instead|other|similar|more like|more (?:from|by|of)|same (?:guy|director|person)|any "
                       r"(?:good )?\w+ (?:movies|films)|is there|are there|do you have|got any|(?:can|could|would) you(?! tell me)|"
                       r"should i|(movies?|films?|something|anything|one|ones) like)\b", re.I)
_IT = re.compile(r"\b(it|that( one)?|this( one)?)\b", re.I)
# a trait asked of a movie -> the genres that say yes ("is it scary?" of a horror film)
_TRAITS = [(re.compile(p, re.I), set(g)) for p, g in (
    (r"\b(scary|scare|frightening|creepy|spooky)\b", ("horror",)),
    (r"\b(funny|hilarious|a comedy|make me laugh)\b", ("comedy",)),
    (r"\b(romantic|a romance|love story)\b", ("romance",)),
    (r"\b(sad|a tearjerker|make me cry)\b", ("drama",)),
    (r"\b(violent|gory|bloody|graphic)\b", ("horror", "war", "crime", "action")),
)]
_ABOUT_YEAR = re.compile(r"\b(what year|how old|when (was|did) it|came out|release[ds]?)\b", re.I)
_ABOUT_CAST = re.compile(r"\b(who'?s in|who is in|who stars|who plays|cast|actors?|starring|stars?)\b", re.I)
_ABOUT_DIRECTOR = re.compile(r"\b(direct\w*|who made)\b", re.I)
_ABOUT_WRITER = re.compile(r"\b(who wrote|who writes|written|writers?|screenplay|script)\b", re.I)
_ABOUT_GENRE = re.compile(r"\b(what genre|which genre|genres?|what kind of (movie|film))\b", re.I)
_ABOUT_PLOT = re.compile(r"\b(about|plot|story)\b", re.I)
_REQUEST = re.compile(r"\?|\b(another|more|else|recommend|suggest|what about|how about|something|anything|"
                      r"other|instead|but)\b", re.I)
# "scratch that, a comedy instead": the new wish replaces every earlier one, not only the one on its axis
_CANCEL = re.compile(r"\b((scratch|scrap|drop|ignore) (that|this|what i said)|"
                     r"forget (that|it|about (that|it)|what i said|(about )?(the|my) [\w-]+( [\w-]+)? (thing|idea|part|bit|stuff))|"
                     r"never ?mind|nvm|change of plans?|on (second|2nd) thought|changed my mind|instead|"
                     r"(no|nah|nope|wait),? actually|actually,? no)\b", re.I)
# "from the last 10 years", "past five years or so"
_NUMBER_WORDS = {"two": 2, "three": 3, "five": 5, "ten": 10, "twenty": 20, "few": 5, "couple": 2, "couple of": 2}
_LAST_YEARS = re.compile(r"\b(?:last|past)\s+(\d{1,2}|two|three|five|ten|twenty|few|couple(?: of)?)\s+years\b", re.I)
CATALOGUE_YEAR = 2018  # the newest movies of the bundled ReDial catalogue
_HARD_CANCEL = re.compile(r"\b(scratch|scrap|forget|never ?mind|nvm|change of plans?|changed my mind)\b", re.I)
# "something older", "classics", "a classic movie"; not "my older brother", "a classic!" (praise), "a classic line"
_OLDER = re.compile(r"\b(older(?! (than|one|ones i|brother|sister|siblings?|parents?|kids?|son|daughter|folks|people|"
                    r"relatives?|cousins?|friends?|guy|lady|couple|audience|crowd|generation|viewers?))|classics|"
                    r"(something|anything|more|some|old) classic|classic (movies?|films?|ones?|stuff|picks?)|"
                    r"old(er)?[- ]school|old ones|something old|anything old|oldies|vintage)\b", re.I)
_RECENT = re.compile(r"\b(recent|new(er)?(?! (york|jersey|zealand|orleans|mexico|england|delhi))|latest|this year|modern)\b", re.I)
# Serve / chat reply length: greedy decoding makes a 40-token reply the first ~35 words of the 60-token one the
# generation benchmarks score (two sentences, ~1.2 s on 2 cores instead of ~1.8 s).
CHAT_REPLY_TOKENS = 40
RECENT_YEAR = 2010  # ReDial was collected in 2017-2018
DEFAULT_RECOMMENDER = "recommender/redial/ecr-fast-s0"  # under the artifacts folder; `make run` trains it
DEFAULT_GENERATOR = "generator/smollm2"  # the fine-tuned SmolLM2 (`ecrs train generator`)
# The default reply model once installed (`--set generator=friend:qwen-1.5b` installs it): Qwen2.5-1.5B zero-shot
# with the `friend` prompt, shown the person's last message only (a shorter prompt: ~0.5 s less per reply on 2
# cores). It meets the reply bars the fine-tuned SmolLM2 misses (benchmarks/results/generation.json).
DEFAULT_FRIEND = "friend:qwen-1.5b"
FRIEND_TURNS = 1


@dataclass
class LinkedEntity:
    entity: int
    name: str
    is_movie: bool


@dataclass
class Recommendation:
    entity: int
    title: str
    year: int | None
    reason: str
    score: float


@dataclass
class _ColumnMasks:
    """Per catalogue column (`kg.item_ids` order): which movies have each genre / person, the year and title."""

    genre: dict[str, np.ndarray]
    person: dict[str, np.ndarray]
    year: np.ndarray
    title: list[str]
    same_title: dict[str, list[int]]  # lower-case title, article dropped -> its columns ("Hangover", "The Hangover")
    plain_title: list[str]  # lower-case, without a leading article: "Ring" (1998) is "The Ring" to a reader
    has_genre: np.ndarray  # the catalogue knows at least one genre of it
    canonical: np.ndarray  # not the obscure namesake of a known film (`_canonical`)
    lead: dict[str, np.ndarray]  # who stars in or directs it: "a spielberg film" is one he directed first


@dataclass
class Understood:
    """What the system read in the user's message: its emotions and the entities it names."""

    emotions: Emotions
    entities: list[LinkedEntity]
    stances: list[tuple[str, str]] = field(default_factory=list)  # (what was named, what was said of it)


@dataclass
class Recommended:
    recommendations: list[Recommendation]  # empty while nothing about the user's taste is known


@dataclass
class ReplyPiece:
    text: str  # the reply, streamed: the first sentence, then each continuation sentence that passes the checks


@dataclass
class Done:
    """The turn is remembered in the state (the caller stores it): `reply` is the system's whole turn."""

    reply: str


TurnEvent = Understood | Recommended | ReplyPiece | Done


@dataclass
class Missing:
    """A trained part the system runs without, what it uses instead, and the command that trains it."""

    part: str
    fallback: str
    command: str

    def __str__(self) -> str:
        return f"no trained {self.part}: using {self.fallback} (train it: {self.command})"


@dataclass
class TurnResult:
    reply: str
    emotions: Emotions
    entities: list[LinkedEntity]
    recommendations: list[Recommendation]
    stances: list[tuple[str, str]] = field(default_factory=list)  # (what was named, what was said of it)


class EmpatheticRecommender:
    """The whole system, loaded once; `turn_events` runs one user message."""

    def __init__(self, kg: KnowledgeGraph, catalogue: dict[int, Movie], linker, emotion, recommender: Recommender,
                 generator=None, top_k: int = 3, missing: list[Missing] | None = None,
                 stance: StanceModel | None = None):
        self.kg = kg
        self.catalogue = catalogue
        self.linker = linker
        self.emotion = emotion
        self.recommender = recommender
        self.generator = generator
        self.stance = stance  # None: nothing named carries a stance (every entity takes the utterance's emotion)
        self.top_k = top_k
        self.missing = missing or []  # trained parts it runs without (said at start-up by chat and serve)
        self._column = np.array(kg.item_ids)
        # the graph's cast and crew, and anyone the catalogue credits that the graph relates otherwise: Nicholas
        # Sparks is an "author" and "producer" there, and the writer of nine catalogue films
        credited = {p for m in catalogue.values() for p in m.stars + m.directors + m.writers}
        self._people = person_entities(kg) | {i for i, n in enumerate(kg.names)
                                              if i not in kg.item_set and n and plain_name(n) in credited}
        self._person_ids = {plain_name(kg.names[p]): p for p in sorted(self._people, reverse=True)}
        # groups the graph names as one ("Coen brothers", "The Wachowskis"), credited by their members' names in the
        # catalogue: a group's films are its members' (`_credits`)
        by_surname: dict[str, list[str]] = {}
        for name in sorted(credited):
            by_surname.setdefault(name.split()[-1], []).append(name)
        self._groups: dict[int, list[str]] = {
            i: by_surname[g.group(1)] for i, n in enumerate(kg.names) if i in self._people
            and (g := _GROUP.fullmatch(n or "")) and len(by_surname.get(g.group(1), ())) > 1}
        self._series_cache: dict[int, np.ndarray] = {}  # `_series`, per movie
        self._namesakes_cache: dict[str, np.ndarray] = {}  # `_with_namesakes`, per genre

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, artifacts: str | Path = "artifacts", recommender: str | None = None,
             generator: str | None = None, top_k: int = 3,
             reply_tokens: int | None = None, llm_threads: int = 1) -> EmpatheticRecommender:
        """Load every artifact once (the graph and the 2.5 s entity linker are shared by every part). The emotion
        and stance classifiers are required (a clear error names the command that trains each); without the default trained
        recommender or generator the system runs on popularity or template replies and lists them in `missing`.
        `recommender` / `generator` name other run folders ("popularity" / "template" force the fallbacks);
        `reply_tokens` caps the generated continuation (None: the generator's own setting); `llm_threads` is the
        reply model's llama.cpp thread count."""
        artifacts = Path(artifacts)
        emotion_dir = artifacts / "emotion"
        if not emotion_dir.exists():
            raise EcrsError(f"{emotion_dir}: emotion classifier not found; train it with `ecrs train emotion`")
        kg = load_redial_kg()
        linker = build_redial_linker(kg, chat=True)
        missing: list[Missing] = []
        if recommender is None and not (artifacts / DEFAULT_RECOMMENDER / "model.pt").exists():
            missing.append(Missing("recommender", "popularity",
                                   "ecrs train recommender --config configs/recommender/ecr-fast.yaml"))
        if generator is None and default_generator(artifacts) is None:
            missing.append(Missing("generator", "one-line template replies",
                                   f"ecrs chat --set generator={DEFAULT_FRIEND} (installs Qwen2.5-1.5B, 1.1 GB, "
                                   "from PyPI; the default from then on)"))
        return cls(
            kg=kg,
            catalogue=load_catalogue(kg),
            linker=linker,
            emotion=EmotionClassifier.load(emotion_dir),
            stance=load_stance(artifacts / "stance"),
            recommender=load_scorer(kg, artifacts, recommender),
            generator=load_generator(artifacts, generator, reply_tokens, linker, llm_threads),
            top_k=top_k,
            missing=missing,
        )

    # ------------------------------------------------------------ one turn

    def understand(self, state: ConversationState, text: str, asking: bool = False
                   ) -> tuple[Emotions, list[LinkedEntity], list[Target]]:
        """Link, read the message's emotion and the stance toward each thing it names, and update the state.
        `asking`: the message asks about a movie ("who's in the first one?"), which says nothing of it."""
        text = text[:MAX_MESSAGE_CHARS]
        context = state.turns[-1][1] if state.turns and state.turns[-1][0] == "recommender" else ""
        mentions = _suggested_titles(text, self.linker.link(text), [
            (e, self.catalogue[e].title) for e in (state.entities[p] for p in state.awaiting_reaction)
            if e in self.catalogue])
        linked = [LinkedEntity(m.entity_id, self.kg.names[m.entity_id], m.is_movie) for m in mentions]
        # Words we cannot read ("asdfgh", another language) say nothing about the last suggestions either; a
        # message that names years asks for something ("make that the 90s instead"), it is no reaction unless it
        # also says one ("seen it. something from the 90s?"); a mood is about the person ("ugh, my week was a
        # mess" after a suggestion is no dislike of it)
        # "seen parasite" names a film the linker does not know: it is no verdict on the last pick either
        # nor "like ex machina", a film the catalogue lacks; "without either of them" is about people
        other = ((not any(m.is_movie for m in mentions) and bool(_OTHER_FILM.search(text) or _LIKE_OTHER.search(text)))
                 or bool(_ABOUT_ME.search(text) or _RESET.search(text) or _NOT_ANY_OF_THEM.search(text)))
        reacting = (bool(state.awaiting_reaction) and not asking and not other
                    and (_era(text) is None or bool(_REACTION.search(text)))
                    and not any(pattern.search(text) for pattern, *_ in _FEELINGS))
        targets = named_targets(text, mentions, self._people, reacting) if mentions or self.readable(text) else []
        # "Will Ferrell is not funny": an adjective said of someone is no genre asked for or ruled out
        targets = [t for t in _with_groups(text, targets) if not (t.span.kind == "genre" and (
            (_ADJECTIVE.fullmatch(text[t.span.start:t.span.end]) and _COPULA.search(text[:t.span.start]))
            or _FIGURATIVE.match(text[t.span.end:])))]  # "the drama at work", "a comedy of errors": no genre
        suggested = _pointed(text, [state.entities[p] for p in state.awaiting_reaction], state.asked)
        complaint = bool(_COMPLAINT.search(text))  # "these are terrible", "you're useless": every pick missed
        if complaint:
            suggested = [state.entities[p] for p in state.awaiting_reaction]
        elif _EARLIEST.search(text) and state.recommended:  # "the first one you suggested at the start"
            suggested = state.recommended[:1]
        # "a comedy starring steve martin, nothing before 1985": the years' "nothing" is the era's (`_era` reads
        # it), not a word about Steve Martin, so the stance reader sees it blanked (same length: spans keep)
        said = _NEGATED_YEAR.sub(lambda m: " " * len(m.group()), text)
        said, spans = _apostrophes(said, [t.span for t in targets])
        stances = self.stance.predict(said, spans) if self.stance and targets else []
        # Titles and names are not emotion words ("The Great Gatsby" is not praise): the utterance's emotion is
        # read with them cut out.
        cut = _cut(text, [t.span for t in targets])
        probs = self.emotion.predict_proba([cut], [context])[0]
        emotions = kept_labels(list(probs))
        negative = bool(emotions) and emotions[0][0] == "negative"
        for t, (stance, p) in zip(targets, stances):
            # Where the stance classifier is unsure about a movie, a negative message speaks against it (ECR's
            # broadcast, for the negative case only: "Jack and Jill. Worst. Movie. Ever."); not for a genre or a
            # person, which a sad message asks for ("rough day, any comedies?").
            t.stance = "disliked" if negative and p < UNSURE and t.span.kind == "movie" else stance
        said_before = next((t for role, t in reversed(state.turns) if role == "seeker"), "")
        _amend_stances(text, targets, said_before, complaint, asking)
        # ECR's attachment: each entity takes the emotion of what was said about it (its stance) where there was
        # one, else the utterance's (ECR's broadcast); the system's last-turn entities take the reaction's.
        by_entity = {t.entity: t.stance for t in targets if t.entity is not None}
        reaction = next((t.stance for t in targets if t.span.kind == "reply"), None)
        for pos in state.awaiting_reaction:
            state.entity_emotions[pos] = STANCE_EMOTIONS.get(reaction or "", emotions)
        state.awaiting_reaction = []
        state.entities += [e.entity for e in linked]
        state.entity_emotions += [STANCE_EMOTIONS.get(by_entity.get(e.entity, ""), emotions) for e in linked]
        state.turns.append(("seeker", text))
        self._remember(state, text, "" if asking else cut, targets, suggested)  # "is it sad?" is no mood
        return emotions, linked, targets

    def _remember(self, state: ConversationState, text: str, cut: str, targets: list[Target],
                  suggested: list[int]) -> None:
        """Stances become memory: opinions of movies, exclusions, and wishes (the latest per axis). `cut` is the
        text without its titles and names ("Blue Velvet" is a title, not a mood)."""
        turn = state.seeker_turns
        named = {t.entity for t in targets}
        if _RESET.search(text):  # "forget everything, start over": what was asked and ruled out goes; seen stays
            state.wishes, state.relaxed = [], []
            state.avoid_genres, state.avoid_people, state.avoid_movies = [], [], []
        # "not him again": the person asked for before (else the last one named) is ruled out; "I don't dislike
        # Brad Pitt, but something without him tonight": the one this message named before the pronoun
        if _NOT_ANY_OF_THEM.search(text):  # "now something without either of them": every person asked for is out
            for p in [p for w in state.wishes if w.axis == "person" for p in w.values]:
                _add(state.avoid_people, p)
                state.remove("person", p)
        them = _NOT_THEM.search(text)
        here = [t for t in targets if them and t.span.kind == "person" and t.span.end <= them.start()]
        if here:
            here[-1].stance = "avoid"
        elif them:
            earlier = [p for w in state.wishes if w.axis == "person" for p in w.values] + [
                e for e in state.entities if e in self._people]
            person = next((p for p in reversed(earlier) if p not in named), None)
            if person is not None:
                _add(state.avoid_people, person)
                state.remove("person", person)
        wanted_genres: list[str] = []
        wanted_studios: list[str] = []
        wanted_people: list[int] = []
        last_person_end = last_genre_end = 0
        joint_here = False  # two people asked for together in this message
        side: dict[tuple[str, Any], tuple[bool, int]] = {}  # (kind, value) -> (positive, end) of its first mention
        # genres this message asks for by name, not by a kind of them: "so over zombie movies. horror recs?"
        wanted_now = {t.genre for t in targets if t.span.kind == "genre" and t.stance in ("liked", "wants")
                      and not _SUBKIND.search(text[t.span.start:t.span.end])}
        for t in targets:
            kind, stance = t.span.kind, t.stance
            value = t.genre if kind == "genre" else t.entity
            positive = stance in ("liked", "wants")
            avoided = state.avoid_people if kind == "person" else state.avoid_genres
            wished = any(value in w.values or any(value in str(v).split(COMPOUND) for v in w.values)
                         for w in state.wishes if w.axis in ("person", "genre", "studio"))
            if kind in ("person", "genre") and _taken_back(text, t, value in avoided, value in avoided or wished):
                # "never mind the tom hanks thing", "actually stallone is fine": neither wished for nor ruled out
                state.remove(kind, value)
                _discard(avoided, value)
                continue
            # A value named twice in one message keeps its first mention's side: a later mention qualifies it
            # ("funny, but not stupid funny": comedy wanted) or repeats it ("I hate horror, so no horror")
            subkind = kind == "genre" and bool(_SUBKIND.search(text[t.span.start:t.span.end]))
            # ... unless a "but" turns a first "no" round: "horror isn't my thing, but my friends want one, so a horror
            # movie pls" asks for horror
            if kind in ("person", "genre") and stance in ("liked", "wants", "disliked", "avoid") and not subkind:
                first = side.setdefault((kind, value), (positive, t.span.end))
                if first[0] != positive:
                    if not (positive and _TURN.search(text[first[1]:t.span.start])):
                        continue
                    _discard(avoided, value)
                    side[(kind, value)] = (positive, t.span.end)
            if kind in ("movie", "reply"):
                movies = [t.entity] if kind == "movie" else suggested
                if stance in ("liked", "disliked"):
                    for m in movies:
                        state.record_feedback(m, stance)
                elif stance == "seen":
                    state.seen += [m for m in movies if m not in state.seen]
                elif stance == "avoid":
                    state.avoid_movies += [m for m in movies if m not in state.avoid_movies]
                # "something like inception", and "more like the second one you said": the new anchor
                anchors = [m for m in movies if m in self.catalogue]
                if anchors and stance not in ("disliked", "avoid") and (
                        _LIKE_PICK.search(text) if kind == "reply"
                        else _LIKE_X.search(text[:t.span.start]) or _X_LIKE.match(text[t.span.end:])):
                    state.wish("similar", anchors, turn, "like " + " or ".join(self.catalogue[m].title for m in anchors))
            elif kind == "person":
                if stance in ("disliked", "avoid"):
                    _add(state.avoid_people, t.entity)
                    state.remove("person", t.entity)
                elif stance in ("liked", "wants"):
                    _discard(state.avoid_people, t.entity)
                    # "Tom Hanks or Meg Ryan" together; "forget Tom Hanks, Brad Pitt" the later one
                    gap = text[last_person_end:t.span.start]
                    if wanted_people and _WITH_PERSON.fullmatch(gap):  # "nolan films with michael caine": both
                        joint_here = True
                    elif not (wanted_people and _LISTED.match(gap)):
                        wanted_people = []
                    elif re.search(r"\band\b|&", gap) and not re.search(r"\bor\b", gap):
                        joint_here = True  # "spielberg and tom hanks": together first, and said so
                    _add(wanted_people, t.entity)
                    last_person_end = t.span.end
            elif (kind == "genre" and t.genre in FRANCHISES and t.genre not in GROUPS and stance not in ("seen",)
                  and (_LIKE_X.search(text[:t.span.start]) or _X_LIKE.match(text[t.span.end:]))):
                # "what else is like die hard?": others like the series, not the series
                state.wish("similar", self._named_series(state, t.genre), turn, f"like {t.genre}")
            elif kind == "genre" and ((t.genre in FRANCHISES and stance in ("liked", "seen")
                                       and not (t.genre in GROUPS and stance == "liked")) or _seen_all(text, t)):
                # a series one loved asks for others like it, one seen all of is done with: "loved the harry
                # potter movies" wants what is like Harry Potter, not its sequels (named, so never recommended back)
                series = self._named_series(state, t.genre)
                if stance == "liked" and series:
                    state.wish("similar", series, turn, f"like {t.genre}")
            elif kind == "genre":
                if stance in ("disliked", "avoid"):
                    if subkind and (t.genre in wanted_now or any(t.genre in v.split(COMPOUND) for w in state.wishes
                                                                  if w.axis == "genre" for v in w.values)):
                        continue  # "horror", then "no slashers though": a kind of the wanted genre, not all of it
                    _add(state.avoid_genres, t.genre)
                    state.remove("genre", t.genre)
                    state.remove("studio", t.genre)  # "a superhero movie", then "ok not superhero then"
                elif stance in ("liked", "wants") and t.genre == "violence":
                    continue  # "a violent action movie" asks for action; violence is only ever ruled out
                elif stance in ("liked", "wants") and (t.genre in STUDIOS or t.genre in FRANCHISES or t.genre in TOPICS):
                    # "a dreamworks movie", "a funny christmas movie": a brand or group is its own axis, wanted
                    # with the genre, not instead of it
                    _discard(state.avoid_genres, t.genre)
                    _add(wanted_studios, t.genre)
                elif stance in ("liked", "wants"):
                    _discard(state.avoid_genres, t.genre)
                    # genre words side by side or joined by "and"/"with some" are one kind of movie ("sci-fi
                    # adventure", "funny and scary"): both first (`_wish_masks`); "comedy or drama" are alternatives
                    gap = text[last_genre_end:t.span.start]
                    if wanted_genres and any(p.fullmatch(gap) for p in (_ADJACENT, _BUT_ALSO, _WITH_SOME)):
                        wanted_genres[-1] = COMPOUND.join(dict.fromkeys(wanted_genres[-1].split(COMPOUND)
                                                                          + [t.genre]))
                    else:
                        _add(wanted_genres, t.genre)
                    last_genre_end = t.span.end
        loved = [t.entity for t in targets if t.span.kind == "movie" and t.stance == "liked" and t.entity in self.catalogue]
        if loved and not (wanted_genres or wanted_studios or wanted_people or state.wishes):
            # "i loved titanic", with nothing asked before or now, asks for what is like it (the recommender alone
            # gave Turner & Hooch); after "a musical", "i love la la land" is taste, not a new request
            state.wish("similar", loved, turn, "like " + " or ".join(self.catalogue[e].title for e in loved))
        ruled_out = [t.entity for t in targets if t.span.kind == "person" and t.stance in ("avoid", "disliked")]
        if ruled_out and _THEIR_STYLE.search(text) and not any(w.axis == "similar" and w.turn == turn
                                                               for w in state.wishes):
            # "seen all of fincher's, something similar he didn't direct": like their films, without them
            name = plain_name(self.kg.names[ruled_out[-1]])
            films = [int(self._column[i]) for i in np.flatnonzero(self._any(self._masks.person,
                                                                               self._credits(ruled_out[-1:])))]
            if films:
                state.wish("similar", films[:_STYLE_FILMS], turn, f"like {name}'s films")
        if len(wanted_genres) > 1 and _BOTH.search(text):  # "romance and action, something for both of us"
            wanted_genres = [COMPOUND.join(dict.fromkeys(g for v in wanted_genres for g in v.split(COMPOUND)))]
        if wanted_genres:  # a newly stated genre replaces the previous wish
            state.wish("genre", wanted_genres, turn, genre_label(wanted_genres))
        if wanted_studios:
            state.wish("studio", wanted_studios, turn,
                       " or ".join(f"from {v}" if v in STUDIOS else f"about {v}" if v in TOPICS else f"{v} movies"
                                   for v in wanted_studios))
        if not wanted_people and _THAT_DIRECTOR.search(text):
            # "i loved inception || anything else by that director?": whoever directed the film last asked about or
            # named, else the first pick on the table
            film = next((t.entity for t in targets if t.span.kind == "movie" and t.entity in self.catalogue), None)
            film = film or state.asked or next((e for e in reversed(state.entities) if e in self.catalogue
                                                and e not in state.recommended), None) or next(iter(suggested), None)
            if film in self.catalogue:
                wanted_people = [self._person_ids[d] for d in self.catalogue[film].directors if d in self._person_ids]
        if _EITHER_OF_THEM.search(text):  # "julia roberts and bruce willis ... either of them": the last two named
            wanted_people = list(dict.fromkeys(p for p in reversed(state.entities) if p in self._people
                                               and p not in state.avoid_people))[:2][::-1]
        if not wanted_people and _WITH_THEM.search(text):  # "stallone is fine. something with him"
            wanted_people = [p for p in reversed(state.entities) if p in self._people and p not in state.avoid_people][:1]
        if _WIMP.search(text) and "horror" not in wanted_now:  # "i'm too much of a wimp tonight, make it a comedy"
            _add(state.avoid_genres, "horror")
            state.remove("genre", "horror")
        before = next((w.values for w in state.wishes if w.axis == "person"), [])
        joint = bool(wanted_people and before and _ALSO_PERSON.search(text)) or joint_here
        if joint:  # "scorsese", then "something with de niro from him": both, together first (`_wish_masks`)
            wanted_people = list(dict.fromkeys([*before, *wanted_people]))
        if wanted_people:
            joiner = " and " if (joint or _BOTH.search(text)) and not re.search(r"\beither\b", text, re.I) else " or "
            state.wish("person", wanted_people, turn,
                       "with " + joiner.join(plain_name(self.kg.names[p]) for p in wanted_people))
        state.wishes = [w for w in state.wishes if w.axis != "mood" or turn - w.turn < MOOD_TURNS]
        for pattern, genres, label, _ in _MOODS:
            m = pattern.search(cut)
            if m and not _TONE_PAIR.search(cut[:m.start()]):  # "funny but also a bit sad" is the film, not you
                state.wish("mood", [g for g in genres if g not in state.avoid_genres], turn, label)
                break
        era = _era(_ANY["era"].sub(" ", cut))  # "forget the 80s" names no era it wants
        shown = [self.catalogue[e].year for e in state.recommended[-self.top_k:]
                 if e in self.catalogue and self.catalogue[e].year]
        if era is None and _OLDER.search(cut):  # older than what was just shown, else than this century
            era = (None, min(shown, default=2000) - 1)
        if era is not None:
            first, last = era
            label = (f"any decade but the {last + 1}s" if first and last == first - 11 else
                     f"any year but {last + 1} to {first - 1}" if first and last and first > last else
                     f"from the {first}s" if first and last == first + 9 else f"from {first}" if first == last
                     else f"from {first} to {last}"
                     if first and last else f"from {first} on" if first else f"before {last + 1}")
            state.wish("era", list(era), turn, label)
        elif _RECENT.search(text):
            state.wish("era", [RECENT_YEAR, None], turn, "recent")
        state.wishes = [w for w in state.wishes if w.turn == turn or not (w.axis in _ANY and _ANY[w.axis].search(cut))]
        new = {w.axis for w in state.wishes if w.turn == turn}
        # a cancel word with a new wish replaces every earlier one; "the 2000s instead" only the years (an era
        # narrows the request, "romantic comedy from the 90s" then "2000s instead" still wants a romantic comedy)
        # and after a goodbye ("cool thanks"), a new kind of movie is a new search: "something scary now" is not
        # scary with the Jim Carrey asked for before it (a new era only refines: "thanks! anything older?")
        said_before = [t for role, t in state.turns[:-1] if role == "seeker"]
        closed = bool(said_before) and _is_closing(said_before[-1]) and bool(new - {"era"})
        if closed or (_CANCEL.search(cut) and new and not (new == {"era"} and not _HARD_CANCEL.search(cut))):
            state.wishes = [w for w in state.wishes if w.turn == turn]

    def _named_series(self, state: ConversationState, name: str) -> list[int]:
        """The movies of a series the person named: named, so never recommended back (`mentioned`)."""
        members = [int(e) for e in self._column[self._masks.genre.get(name, np.zeros(len(self._column), dtype=bool))]]
        state.mentioned += [e for e in members if e not in state.mentioned]
        return members

    def remembered(self, state: ConversationState) -> list[tuple[str, Any, str]]:
        """The preference state as removable entries (kind, value, how to say it): what `ecrs chat --show` prints
        and the web page lists; `state.remove(kind, value)` forgets one."""
        def title(e: int) -> str:
            return self.catalogue[e].display if e in self.catalogue else self.kg.names[e]
        def label(w: Wish) -> str:
            if w.label:
                return w.label
            if w.axis == "person":
                return "with " + " or ".join(plain_name(self.kg.names[p]) for p in w.values)
            return f"{w.axis} {w.values}"
        return ([(w.axis, None, f"wants {label(w)}") for w in state.wishes]
                + [("avoid_genres", g, f"no {g}") for g in state.avoid_genres]
                + [("avoid_people", p, f"no {plain_name(self.kg.names[p])}") for p in state.avoid_people]
                + [("avoid_movies", e, f"not {title(e)}") for e in state.avoid_movies]
                + [("liked", e, f"liked {title(e)}") for e in state.liked]
                + [("disliked", e, f"disliked {title(e)}") for e in state.disliked]
                + [("seen", e, f"seen {title(e)}") for e in state.seen])

    def describe(self, state: ConversationState) -> str:
        """The preference state in one line (`ecrs chat --show`)."""
        said = [label for _, _, label in self.remembered(state)]
        if state.relaxed:
            said.append(f"(relaxed: {', '.join(w.label or w.axis for w in state.relaxed)})")
        return "; ".join(said) or "nothing yet"

    def _say(self, t: Target) -> str:
        return t.genre or (self.kg.names[t.entity] if t.entity is not None else "your last suggestion")

    def recommend(self, state: ConversationState, k: int | None = None) -> list[Recommendation]:
        """Top-k movies for the current state: never an exclusion; the wishes, where an older one gives way when
        together they would leave fewer than k movies (`state.relaxed` says which, for the reply)."""
        k = k or self.top_k
        sample = Sample(
            id="live", dialog_id="live", turn=len(state.turns), context=list(state.turns),
            entities=state.entities[-32:], entity_emotions=state.entity_emotions[-32:],
            mentioned_items=state.mentioned + [e for e in state.entities if e in self.kg.item_set], targets=[],
            response="",
            seeker_emotion=state.entity_emotions[-1] if state.entity_emotions else [],
        )
        raw = self.recommender.score([sample])[0].astype(np.float64)
        # Wishes from the newest: each is kept if the movies still allowed stay >= k with it, else relaxed, so an
        # older wish gives way to a newer one it contradicts ("with Tom Hanks", later "before 1980")
        ok = self._allowed(state)
        state.relaxed = []
        # A wish that leaves a few movies, not k, still puts those few first: "not a comedy, with Jim Carrey" has two
        # (The Number 23, Eternal Sunshine), and they lead the list the other wishes fill
        few: np.ndarray | None = None
        short = False  # `few` are all that fit every wish: then they alone are shown, not padded with misfits
        # (said in one turn, "a sci-fi movie like Interstellar": "like" is the loosest wish and gives way first)
        ordered = sorted(state.wishes, key=lambda w: (-w.turn, w.axis == "similar"))
        asked = frozenset(g for w in state.wishes if w.axis == "genre" for v in w.values for g in str(v).split(COMPOUND))
        readings = [self._wish_masks(w, asked, frozenset(state.avoid_genres)) for w in ordered]  # strictest first
        # what the older wishes allow at their loosest: a newer wish takes the strictest reading that leaves them
        # room ("sci-fi || like blade runner || 80s || no harrison ford": 80s sci-fi like it, not 80s action-thrillers
        # sharing Sean Young, after which sci-fi had to give way)
        room = [np.ones(len(self._column), dtype=bool) for _ in ordered]
        for i in range(len(ordered) - 2, -1, -1):
            room[i] = room[i + 1] & np.logical_or.reduce(readings[i + 1])
        for w, masks, later in zip(ordered, readings, room):
            closest = None  # the strictest reading's few ("keanu and sandra bullock": Speed), put first below
            fit = next((i for i, m in enumerate(masks) if (ok & m & later).sum() >= k), None)
            for i, mask in enumerate(masks):
                narrowed = ok & mask
                if i == fit or (fit is None and narrowed.sum() >= k):
                    ok = narrowed
                    if few is not None and (few & mask).any():
                        few &= mask
                    elif few is None and closest is not None:
                        few = closest
                    break
                if closest is None and narrowed.any():
                    closest = narrowed
            else:
                if few is None and (ok & masks[-1]).any():
                    few, short = ok & masks[-1], True
                else:
                    state.relaxed.append(w)
        state.relaxed.sort(key=lambda w: w.turn)
        scores = np.where(ok, raw, -np.inf)
        first = np.zeros(len(scores), dtype=bool) if few is None else few & ok
        # One film per series in a list ("Miss Congeniality" and its sequel are one suggestion): the first 4k
        # candidates are plenty, and the pairwise title check costs microseconds
        out: list[Recommendation] = []
        picked: list[Movie] = []
        for i in np.lexsort((-scores, ~first))[:4 * k]:
            if not np.isfinite(scores[i]) or len(out) == k:
                break
            m = self.catalogue[int(self._column[i])]
            if any(same_series(m, p) for p in picked):
                continue
            if short and out and not first[i]:
                break  # "i hate comedies || jim carrey?": his two other films, not a third without him
            picked.append(m)
            out.append(Recommendation(m.entity, m.title, m.year, m.reason(), float(scores[i])))
        return out

    def _allowed(self, state: ConversationState) -> np.ndarray:
        """Boolean mask over `kg.item_ids`: what the person ruled out never comes back (movies recommended, seen,
        disliked or named, avoided genres and people). Column masks are precomputed once (`_masks`), so this costs
        well under a millisecond instead of a Python loop over every movie."""
        excluded = state.excluded() | set(state.mentioned) | {e for e in state.entities if e in self.kg.item_set}
        ok = ~np.isin(self._column, np.fromiter(excluded, dtype=self._column.dtype, count=len(excluded)))
        masks = self._masks
        # and what shares a title with them: "The Notebook" (2013) after "The Notebook" (2004) reads as a repeat
        for e in excluded:
            if e in self.catalogue:
                ok[masks.same_title.get(_ARTICLE.sub("", self.catalogue[e].title.lower()), [])] = False
        wished = {g for w in state.wishes if w.axis == "genre" for v in w.values for g in v.split(COMPOUND)}
        # ... and their companions, unless asked for ("animation, but nothing for little kids")
        avoided = state.avoid_genres + [g for a in state.avoid_genres for g in _ALSO_AVOIDED.get(a, ()) if g not in wished]
        ok &= masks.canonical
        for g in avoided:
            ok &= ~self._with_namesakes(g)
        if set(avoided) & (_GENRES | {"violence"}):  # a movie without genres could be anything: "no horror" cannot clear it
            ok &= masks.has_genre
        ok &= ~self._any(masks.person, self._credits(state.avoid_people))
        # "not John Wick" is not "John Wick: Chapter 2" either, and who hated The Avengers gets no Infinity War
        for e in state.avoid_movies + state.disliked:
            if e in self.catalogue:
                ok &= ~self._series(self.catalogue[e])
                for series in self.catalogue[e].franchises:
                    if series not in GROUPS and series in masks.genre:
                        ok &= ~masks.genre[series]
        return ok

    def _canonical(self, plain: list[str]) -> np.ndarray:
        """False for a movie whose title, articles aside, another catalogue movie shares when that other one is in
        MovieLens (films people watch) and this one is not: "The Notebook" is the 2004 film, and the 2013
        Hungarian war film of that title, which the recommender may score from the same ReDial mentions (ReDial's
        own mapping gives some of them the obscure namesake: Hostel, Ghost), is never the pick."""
        known = movielens_genres()
        watched = [self.catalogue[int(e)].imdb_id in known for e in self._column]
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(plain):
            groups.setdefault(t, []).append(i)
        out = np.ones(len(plain), dtype=bool)
        for cols in groups.values():
            if len(cols) > 1 and any(watched[i] for i in cols):
                out[cols] = [watched[i] for i in cols]
        return out

    def _with_namesakes(self, genre: str) -> np.ndarray:
        """The movies of `genre` and every movie sharing a title with one of them, articles aside: after "no
        horror", Hostel (2011, an Indian drama) is the horror film to the recommender, which learnt the title from
        ReDial's mentions of Hostel (2005). Memoised per genre."""
        if genre not in self._namesakes_cache:
            masks = self._masks
            key = masks.plain_title
            of_genre = {key[i] for i in np.flatnonzero(masks.genre.get(genre, np.zeros(len(key), dtype=bool)))}
            self._namesakes_cache[genre] = np.array([k in of_genre for k in key])
        return self._namesakes_cache[genre]

    def _series(self, movie: Movie) -> np.ndarray:
        """The catalogue's movies whose title continues `movie`'s as a sequel's does: "John Wick: Chapter 2",
        "Toy Story 3", or any further words from the same director or writer ("The Matrix Reloaded", but not "Up
        in the Air" after "Up"): `_continues` for every column. Memoised per movie: a pass costs a few ms."""
        if movie.entity in self._series_cache:
            return self._series_cache[movie.entity]
        out = np.array([_continues(movie, self.catalogue[int(e)]) for e in self._column], dtype=bool)
        self._series_cache[movie.entity] = out
        return out

    def _wish_masks(self, wish: Wish, asked: frozenset[str] = frozenset(),
                    avoided: frozenset[str] = frozenset()) -> list[np.ndarray]:
        """The movies a wish allows, strictest reading first: "sci-fi adventure" is both genres, else either."""
        if wish.axis == "mood":  # a kind `asked` for outright stays: "a drama, not too sad" is a light drama
            return [self._any(self._masks.genre, wish.values) & ~self._any(
                self._masks.genre, ["horror", *(g for g in _MOOD_NOT.get(wish.label, ()) if g not in asked)])]
        if wish.axis == "genre" and any(COMPOUND in v for v in wish.values):
            both = np.zeros(len(self._column), dtype=bool)
            for v in wish.values:
                both |= np.logical_and.reduce([self._any(self._masks.genre, [g]) for g in v.split(COMPOUND)])
            return [both, self._wish_mask(wish)]
        if wish.axis == "person":  # "both tom hanks and meg ryan": together first; then as star or director
            each = [self._credits([p]) for p in wish.values]
            together = ([np.logical_and.reduce([self._any(self._masks.person, names) for names in each])]
                        if len(each) > 1 else [])
            return [*together, self._any(self._masks.lead, self._credits(wish.values)), self._wish_mask(wish)]
        if wish.axis == "similar":  # of one tone first: two of its genres and a person, then two genres
            loose = self._wish_mask(wish)
            masks = self._masks
            movies = [self.catalogue[e] for e in wish.values if e in self.catalogue]
            if len(movies) > _STYLE_MIN:
                # a body of work ("like wes anderson's films"): its usual genres and its regulars, not whatever
                # any one of its films shares with anything (Moonrise Kingdom's Bruce Willis brought Die Hard 2)
                genres = Counter(g for m in movies for g in set(m.genres))
                usual = [g for g, n in genres.most_common() if n * 3 >= len(movies)] or [genres.most_common(1)[0][0]]
                kin = sum(self._any(masks.genre, [g]).astype(np.int8) for g in usual) >= min(2, len(usual))
                crew = Counter(p for m in movies for p in set(m.stars + m.directors + m.writers))
                people = self._any(masks.person, [p for p, n in crew.items() if n >= 2])
                return [loose & kin & people, loose & kin, loose, kin & ~self._not_series(movies)]
            kin = np.zeros(len(self._column), dtype=bool)
            for m in movies:  # its kinds the person did not rule out: "like the social network, not a drama"
                kinds = set(m.genres) - avoided
                shared = sum(self._any(masks.genre, [g]).astype(np.int8) for g in kinds)
                # and of its form: "like toy story 3" is animated, not Tim Allen's live-action comedies
                form = np.logical_and.reduce([self._any(masks.genre, [f]) == (f in m.genres) for f in _FORMS])
                kin |= (np.asarray(shared) >= min(2, len(kinds) or 1)) & form
            people = self._any(masks.person, [p for m in movies for p in m.stars + m.directors + m.writers])
            # last, its tone alone: "a horror like get out, before 2000" shares no one with it, and The Shining is
            # still like it rather than a wish given up
            return [loose & kin & people, loose & kin, loose, kin & ~self._not_series(movies)]
        return [self._wish_mask(wish)]

    def _not_series(self, movies: list[Movie]) -> np.ndarray:
        """The movies of the named ones' series and franchises (and they themselves): never "like" them."""
        out = np.zeros(len(self._column), dtype=bool)
        for m in movies:
            out |= self._series(m) | self._any(self._masks.genre, m.franchises)
            out |= np.asarray(self._column) == m.entity
        return out

    def _wish_mask(self, wish: Wish) -> np.ndarray:
        masks = self._masks
        if wish.axis == "genre":
            return self._any(masks.genre, [g for v in wish.values for g in v.split(COMPOUND)])
        if wish.axis == "studio":  # brands live in the genre table (`_masks`)
            return self._any(masks.genre, wish.values)
        if wish.axis == "mood":  # something light: none of the mood's genres is horror; a good cry is no comedy
            return self._any(masks.genre, wish.values) & ~self._any(masks.genre, ["horror", *_MOOD_NOT.get(wish.label, ())])
        if wish.axis == "person":
            return self._any(masks.person, self._credits(wish.values))
        if wish.axis == "era":  # [first year or None, last year or None]; an unknown year (-1) never passes
            first, last = (list(wish.values) + [None])[:2]
            if first is not None and last is not None and first > last:  # "not from the 80s": either side of it
                return (masks.year >= first) | ((masks.year >= 0) & (masks.year <= last))
            return (masks.year >= (first if first is not None else 0)) & (masks.year <= (last or 9999))
        if wish.axis == "similar":  # a genre and a person in common, or the director (`_wish_masks` narrows it)
            movies = [self.catalogue[e] for e in wish.values if e in self.catalogue]
            near = (self._any(masks.genre, [g for m in movies for g in m.genres])
                    & self._any(masks.person, [p for m in movies for p in m.stars + m.directors + m.writers])
                    ) | self._any(masks.person, [p for m in movies for p in m.directors])
            for m in movies:  # "like The Matrix" asks for other movies, not The Matrix's sequels
                near &= ~self._series(m) & ~self._any(masks.genre, m.franchises)
            return near
        raise EcrsError(f"unknown wish axis {wish.axis!r}")

    def _credits(self, people: Iterable[int]) -> list[str]:
        """The names the catalogue credits `people` by: their own, or a group's members' ("Coen brothers": Joel and
        Ethan Coen)."""
        return [n for p in people for n in self._groups.get(p, [plain_name(self.kg.names[p])])]

    def _any(self, table: dict[str, np.ndarray], keys) -> np.ndarray:
        out = np.zeros(len(self._column), dtype=bool)
        for key in keys:
            if key in table:
                out |= table[key]
        return out

    @property
    def _masks(self) -> _ColumnMasks:
        if not hasattr(self, "_masks_cache"):
            genre: dict[str, list[int]] = {}
            person: dict[str, list[int]] = {}
            lead: dict[str, list[int]] = {}
            year = np.full(len(self._column), -1, dtype=np.int32)  # unknown year: never "recent"
            for i, e in enumerate(self._column):
                m = self.catalogue[int(e)]
                # a studio ("Disney") or a series ("Star Wars") is wished for or ruled out as a genre is
                for g in set(m.genres + m.studios + m.franchises + m.topics
                             + (["violence"] if set(m.genres) & set(_VIOLENT) else [])):
                    genre.setdefault(g, []).append(i)
                for name in set(m.stars + m.directors + m.writers):
                    person.setdefault(name, []).append(i)
                for name in set(m.stars + m.directors):
                    lead.setdefault(name, []).append(i)
                if m.year is not None:
                    year[i] = m.year

            def as_masks(table: dict[str, list[int]]) -> dict[str, np.ndarray]:
                out = {}
                for key, cols in table.items():
                    mask = np.zeros(len(self._column), dtype=bool)
                    mask[cols] = True
                    out[key] = mask
                return out

            titles = [self.catalogue[int(e)].title for e in self._column]
            plain = [_ARTICLE.sub("", t.lower()) for t in titles]
            same_title: dict[str, list[int]] = {}
            for i, t in enumerate(plain):
                same_title.setdefault(t, []).append(i)
            has_genre = np.array([bool(self.catalogue[int(e)].genres) for e in self._column])
            self._masks_cache = _ColumnMasks(as_masks(genre), as_masks(person), year, titles, same_title, plain,
                                             has_genre, self._canonical(plain), as_masks(lead))
        return self._masks_cache

    def turn_events(self, state: ConversationState, text: str, reply: bool = True) -> Iterator[TurnEvent]:
        """The one chat turn: `Understood`, `Recommended`, the reply in `ReplyPiece`s, then `Done` once the state
        remembers the turn. `reply=False` generates no text: the system's turn is the list of titles."""
        if not isinstance(text, str) or not text.strip():
            raise EcrsError("empty message")
        asked = self._asked_about(state, text)
        waiting = list(state.awaiting_reaction)
        emotions, linked, targets = self.understand(state, text, asking=asked is not None)
        yield Understood(emotions, linked, [(self._say(t), t.stance) for t in targets])
        if asked is not None:  # answered from the catalogue; the picks on the table stay there ("ok, that one")
            yield Recommended([])
            people = [plain_name(e.name) for e in linked if e.entity in self._people]
            movie = self.catalogue[asked]
            said = " ".join([sorry for pattern, sorry in _CANT_FILTER if pattern.search(text)]
                            + [answer(movie, text, people)]) if reply else ""
            # the person the answer names first is who "not him" means next ("who's in it?" ... "not him")
            lead = [self._person_ids[n] for n in (movie.directors if _ABOUT_DIRECTOR.search(text) else movie.stars)[:1]
                    if n in self._person_ids]
            state.entities += lead
            state.entity_emotions += [[] for _ in lead]
            if reply:
                yield ReplyPiece(said)
            self._finish_turn(state, said, [], waiting, asked)
            yield Done(said)
            return
        # "thanks, bye" closes; "thanks! now a comedy" or "that's all, but no horror" is a request
        closing = _is_closing(text) and not any(t.stance != "none" for t in targets if t.span.kind in ("genre", "person"))
        unread = not (linked or targets) and not self.readable(text)  # targets: understand found it readable
        relaxed_before = [(w.axis, w.label) for w in state.relaxed]
        recs = self.recommend(state) if self._should_recommend(state, text) and not (closing or unread) else []
        # a wish that gave way is said once, when it first does, not on every later turn
        state_news = [w for w in state.relaxed if (w.axis, w.label) not in relaxed_before]
        yield Recommended(recs)
        if reply:
            pieces = []
            for piece in self._reply(state, emotions, targets, recs, closing, unread, state_news):
                pieces.append(piece)
                yield ReplyPiece(piece)
            said = "".join(pieces)
        else:
            said = "; ".join(f"{r.title}{f' ({r.year})' if r.year else ''}" for r in recs)
        self._finish_turn(state, said, recs)
        yield Done(said)

    def turn(self, state: ConversationState, text: str, reply: bool = True) -> TurnResult:
        """`turn_events`, collected."""
        return collect(self.turn_events(state, text, reply))

    def _finish_turn(self, state: ConversationState, reply: str, recs: list[Recommendation],
                     waiting: list[int] | None = None, asked: int | None = None) -> None:
        """Remember the system's turn; `waiting`: the suggestions still awaiting a reaction when none were new,
        `asked`: the movie a question was answered about."""
        state.turns.append(("recommender", reply))
        prefetch = getattr(self.recommender, "prefetch", None)
        if prefetch is not None:  # embed our reply while the user reads it, not on their next turn
            prefetch([reply])
        rec_entities = [r.entity for r in recs]
        state.recommended += rec_entities
        state.awaiting_reaction = (list(range(len(state.entities), len(state.entities) + len(rec_entities)))
                                   if waiting is None else waiting)
        state.asked = asked
        state.entities += rec_entities
        state.entity_emotions += [[] for _ in rec_entities]
        state.compact(self.kg.item_set)

    def readable(self, text: str) -> bool:
        """False for letters that make no word we know ("asdfgh", "qwpeoi zzzz"): none of the first 20 words is an
        ordinary chat word (ReDial's, the linker's `common_words`), one edit from one (5+ letters: "thrillr"), or a
        genre word, a letter typed thrice counting once ("moreee"). No words at all ("😭", "!!!") is readable: its
        feeling is read."""
        words = [re.sub(r"(.)\1{2,}", r"\1", w) for w in _WORD.findall(text.lower())[:20]]  # "moreee" -> "more"
        if not words or genre_mentions(text):
            return True
        common = self.linker.common_words
        return any(w in common or w in _CHAT_WORDS or (len(w) >= 5 and process.extractOne(w, common, scorer=Levenshtein.distance,
                                                                      score_cutoff=1) is not None)
                   for w in words)

    def _asked_about(self, state: ConversationState, text: str) -> int | None:
        """The catalogue movie a question is about ("what's the second one about?", "who directed the godfather?",
        "is it any good?", "what about jaws?"), or None for anything else, requests included ("what about
        something older?", "any other thrillers?")."""
        if _EARLIEST.search(text) and state.recommended and state.recommended[0] in self.catalogue:
            return state.recommended[0]  # "the first one you suggested at the very start, who's in it?"
        wanted = _WANT_TO_WATCH.search(text)  # "i want to watch jaws": that one, not three others
        if wanted:
            named = [m.entity_id for m in self.linker.link(text[wanted.end():]) if m.entity_id in self.catalogue]
            if named:
                return named[0]
        # the question may follow the pick it is about: "the third one, is it scary?", "the first one is it funny?"
        clauses = re.split(r"[,.;!]\s*|\s+-\s+|\s+but\s+|\s+(?=(?:what'?s|whats|who'?s|who)\s)", _PLACE.sub("", text))
        if not (any(_QUESTION.match(c) for c in clauses) and (
                text.rstrip().endswith("?") or any(_TELL_ME.match(c) or _STRONG_QUESTION.match(c) for c in clauses))
                ) or _ASKS_FOR.search(text):
            return None
        named = [m.entity_id for m in self.linker.link(text) if m.entity_id in self.catalogue
                 and not all(w in STOPWORDS for w in _WORD.findall(m.surface.lower()))]  # "who's in it?" is no It
        if named:
            return named[0]
        if state.asked is not None and _IT.search(text) and not _ORDINAL.search(text):
            return state.asked  # "what about interstellar?" ... "is it long?"
        # a lower-case title the linker needs a cue for: "who directed the godfather?"
        rest = _QUESTION_TAIL.sub("", _QUESTION.sub("", text, count=1)).strip(" ?!.").lower()
        pointing = all(w in STOPWORDS for w in _WORD.findall(rest))  # "who's in it?": "it" is no title here
        columns = [] if pointing else [c for c in self._masks.same_title.get(_ARTICLE.sub("", rest), [])
                                       if self._masks.canonical[c]]
        if columns:
            return int(self._column[columns[0]])
        shown = [state.entities[p] for p in state.awaiting_reaction if state.entities[p] in self.catalogue]
        if shown and (_ORDINAL.search(text) or _IT.search(text)):
            return _pointed(text, shown)[0]
        return None

    def _should_recommend(self, state: ConversationState, text: str) -> bool:
        # Ask first only when the person just said hello and nothing about their taste is known yet.
        known = state.entities or state.wishes or state.avoid_genres or state.avoid_people
        return bool(known or len(state.turns) > 2 or not _GREETING.search(text))

    def _reply(self, state: ConversationState, emotions: Emotions, targets: list[Target],
               recs: list[Recommendation], closing: bool = False, unread: bool = False,
               relaxed: list | None = None) -> Iterator[str]:
        if closing and not state.recommended:
            # "thanks!" before any pick: nothing to enjoy yet, so a kind word and an invitation, not a goodbye
            yield ("You're welcome! Whenever you're ready, tell me a movie you loved, or a genre or actor you're in "
                   "the mood for.")
            return
        if closing:
            reaction = {t.stance for t in targets if t.span.kind == "reply"}
            # "i'll take the second one": named back, so a wrong reading shows
            taken = self.catalogue.get(state.liked[-1]) if reaction & {"liked", "wants"} and state.liked else None
            thanked = _THANKS.search(state.turns[-1][1] if state.turns else "")
            if reaction & {"disliked", "avoid"}:  # "none of these, forget it, bye": no "great choice"
                yield "Sorry none of those clicked. Come back any time and we'll find a better one."
            elif taken is not None:
                said = state.turns[-1][1] if state.turns else ""
                # "great choice" only for a pick plainly taken: "great, goodnight" took nothing by name
                chose = _PICKED.match(said) or _TAKING.search(said)
                opener = "You're welcome! Enjoy" if thanked else "Great choice, enjoy" if chose else "Enjoy"
                yield f"{opener} {taken.title}, and come back any time you need another pick."
            elif thanked:
                yield "You're welcome! Hope you find something good, and come back any time you need another pick."
            else:
                yield "Bye for now! Come back any time you need another pick."
            return
        if unread:
            # letters of the Latin alphabet may be a name the catalogue lacks ("joel coen"), not another language
            said = state.turns[-1][1] if state.turns else ""
            latin = all(ord(c) < 0x250 for c in said if c.isalpha())
            yield ("Sorry, I didn't catch that" + (": if it's a name or a title, I may not know it" if latin else
                                                   " (I only speak English for now)")
                   + ". Tell me about a movie you loved, or a genre or actor you're in the mood for!")
            return
        if not recs:
            yield ("Tell me about a movie you loved, or a genre or actor you're in the mood for, "
                   "and I'll find you something!")
            return
        yield acknowledge(state, targets, emotions, self.kg.names, relaxed) + " "
        if self.generator is not None:
            # our earlier side lists are not part of what was said: a model shown them writes them again
            said = [(role, text.split(_ALSO)[0] if role == "recommender" else text) for role, text in state.turns]
            # a model that read "not a fan of Adam Sandler" may still write "I'm a huge fan of Adam Sandler", or
            # call the pick "a touch of psychological horror" after "no horror": a
            # sentence naming what the person ruled out is dropped (never praise what they just turned down)
            # (titles of under 5 letters, "Up", "It", would drop every sentence that uses the word)
            names = [plain_name(self.kg.names[e]) for e in state.avoid_people + state.disliked] + state.avoid_genres
            ruled_out = [re.compile(rf"\b{re.escape(n)}s?\b", re.I) for n in names if len(n) >= 5]
            for piece in self.generator.stream(recs[0].entity, said, emotions):
                if not any(name.search(piece) for name in ruled_out):
                    yield piece
        else:
            yield from template_reply(recs[0], why(state, self.catalogue[recs[0].entity], self.kg.names))
        if len(recs) > 1:
            yield _ALSO + "; ".join(
                f"{r.title}{f' ({r.year})' if r.year else ''}" for r in recs[1:]) + "."


def collect(events: Iterator[TurnEvent]) -> TurnResult:
    """A turn's events as one result (the reply is `Done`'s)."""
    emotions: Emotions = []
    entities: list[LinkedEntity] = []
    recs: list[Recommendation] = []
    stances: list[tuple[str, str]] = []
    reply = ""
    for event in events:
        if isinstance(event, Understood):
            emotions, entities, stances = event.emotions, event.entities, event.stances
        elif isinstance(event, Recommended):
            recs = event.recommendations
        elif isinstance(event, Done):
            reply = event.reply
    return TurnResult(reply, emotions, entities, recs, stances)


# The reply's opener for the utterance's emotion when nothing named carried a negative stance; "Nice one!" only
# follows a stated liking (`acknowledge`), and none of them praises the person's taste.
_OPENERS = {
    "negative": "Sorry that didn't click.",
    "like": "Nice one!",
    "happy": "Sounds fun!",
    "grateful": "Happy to help!",
    "nostalgia": "Ah, the classics!",
    "curious": "Good question!",
    "surprise": "Right?!",
    "agreement": "Awesome.",
}


def _amend_stances(text: str, targets: list[Target], said_before: str, complaint: bool, asking: bool) -> None:
    """What the stance reader gets wrong or cannot know from one message, set after it: phrases and lists that share
    a stance, a ban that goes on ("or thrillers" after `said_before` "no horror"), a verb or "no" right before a
    name, names said alone, a pick taken or turned down by its place, a series seen all of. Each rule is a case
    new users typed (tests in `test_preferences.py`)."""
    _share_phrase_stances(text, targets)
    for a, b in zip(targets, targets[1:]):  # "seen pulp fiction and django": a list of titles shares "seen"
        if (a.span.kind == b.span.kind == "movie" and a.stance == "seen"
                and _LISTED.match(text[a.span.end:b.span.start])):
            b.stance = "seen"
    for t in targets:  # "but funny" after "something like die hard": more wished for, not ruled out
        if t.span.kind == "genre" and t.stance in ("avoid", "disliked") and _BUT_ALSO_OPENING.match(text[:t.span.start]):
            t.stance = "wants"
    for a, b in zip(targets, targets[1:]):  # "romantic but funny", "comedy with a bit of action" ask for both,
        # "romantic but not funny" not
        if (a.span.kind == b.span.kind == "genre" and a.stance in ("wants", "liked")
                and b.stance in ("avoid", "disliked")
                and (_BUT_ALSO.fullmatch(text[a.span.end:b.span.start]) or _WITH_SOME.fullmatch(text[a.span.end:b.span.start]))):
            b.stance = "wants"
    mild = {t.genre for t in targets if t.span.kind == "genre" and _NOT_TOO.search(text[:t.span.start])}
    for t in targets:
        if t.span.kind == "genre" and t.genre in mild:
            t.stance = "none"
    for t in targets:  # "not john wick, seen all of those": the series is done with, not the one film
        if t.span.kind == "movie" and t.stance in ("seen", "none") and (
                _ALL_SEEN_AFTER.match(text[t.span.end:]) or _ALL_SEEN_BEFORE.search(text[:t.span.start])):
            t.stance = "avoid"
    if _OR_MORE.match(text) and _BANNED.search(said_before):
        for t in targets:  # "no musicals" ... "or romance": the list of what is ruled out goes on
            if t.stance in ("liked", "wants", "none") and t.span.kind in ("genre", "person"):
                t.stance = "avoid"
    for t in targets:  # "kool thx": a thank-you is no verdict against the picks
        if t.span.kind == "reply" and t.stance in ("disliked", "avoid") and _THANKS.search(text) and not _NAY.search(text):
            t.stance = "none"
    for t in targets:  # "she's great but no hunger games": a "no" right before a name is never praise of it,
        # nor "nah i hate sports movies" (which the stance reader once read as liked)
        if t.stance == "none" and t.span.kind != "reply" and _NO_RIGHT_BEFORE.search(text[:t.span.start]):
            t.stance = "avoid"  # "arnie films || no terminator"
        elif t.stance == "none" and t.span.kind in ("genre", "person") and (
                _THEIRS_RIGHT_BEFORE.search(text[:t.span.start]) or _LIKE_RIGHT_BEFORE.search(text[:t.span.start])):
            t.stance = "wants"
        elif t.stance in ("none", "liked", "wants") and t.span.kind != "reply" and _HATE_AFTER.match(text[t.span.end:]):
            t.stance = "disliked"  # "i like comedy but horror scares me"
        elif t.stance == "none" and t.span.kind == "person" and (
                _BY_RIGHT_BEFORE.search(text[:t.span.start])
                or (t is not targets[0] and (prev := targets[targets.index(t) - 1]).span.kind == "person"
                    and prev.stance == "wants" and _LISTED.match(text[prev.span.end:t.span.start]))):
            t.stance = "wants"  # "with either ben affleck or val kilmer": the list shares the ask
        elif t.stance in ("avoid", "disliked") and t.span.kind == "genre" and not _NEGATED_CLAUSE.search(
                text[:t.span.start]) and (_THEIRS_RIGHT_BEFORE.search(text[:t.span.start]) or  # "but my wife loves comedies"
                _SOME_RIGHT_BEFORE.search(text[:t.span.start]) or _BUT_RIGHT_BEFORE.search(text[:t.span.start])
                or (_BUT_BARE.search(text[:t.span.start]) and _ENDS.fullmatch(text[t.span.end:]))
                or _FINE_WITH_RIGHT_BEFORE.search(text[:t.span.start])):  # "i'm fine with war movies now"
            t.stance = "wants"
        elif t.stance in ("liked", "wants") and t.span.kind != "reply":
            if _NO_RIGHT_BEFORE.search(text[:t.span.start]):
                t.stance = "avoid"
            elif _HATE_RIGHT_BEFORE.search(text[:t.span.start]):
                t.stance = "disliked"
        elif (t.stance in ("disliked", "avoid") and t.span.kind != "reply"
              and _LIKE_RIGHT_BEFORE.search(text[:t.span.start])):
            t.stance = "liked"  # "i liked the matrix but hated the sequels": the hate is the sequels'
    rest, last = [], 0
    for t in targets:  # in text order
        rest.append(text[last:t.span.start])
        last = max(last, t.span.end)
    if targets and set(_WORD.findall(" ".join(rest + [text[last:]]).lower())) <= _BARE_REQUEST:
        for t in targets:  # "comedy or drama": names alone ask for them
            if t.stance == "none" and t.span.kind in ("genre", "person"):
                t.stance = "wants"
    for t in targets:  # "who directed the godfather?" is no verdict on it
        if asking and t.span.kind == "movie":
            t.stance = "none"
    for t in targets:  # the picks praised only where something praises: "something oscar-worthy and serious" is a
        # request; "meh seen it" says seen, not hated
        if t.span.kind == "reply" and t.stance == "liked" and not (_PRAISE.search(text) or _PICKED.match(text)
                                                                   or _TAKING.search(text)):
            t.stance = "none"
        elif t.span.kind == "reply" and t.stance == "disliked" and _SEEN_WORDS.search(text) and not _PAN.search(text):
            t.stance = "seen"
    for t in targets:  # "nah im good for now, night": no more picks wanted, no verdict on these
        if t.span.kind == "reply" and t.stance == "avoid" and (_DONE_FOR_NOW.search(text) or _DONE.search(text)):
            t.stance = "none"
    for i, t in enumerate(targets):
        # a "no" in a later clause is that clause's: "action movie after 2000 but without tom cruise, im sick of him",
        # "clint eastwood western, nothing older than 1970 tho" ask for action and for Eastwood
        if (t.span.kind in ("genre", "person") and t.stance in ("avoid", "disliked")
                and not _NEGATED_CLAUSE.search(text[:t.span.start]) and not _HATE_AFTER.match(text[t.span.end:])):
            after = text[t.span.end:]
            neg = _NEG_WORD.search(after)
            brk = _CLAUSE_BREAK.search(after[:neg.start()]) if neg else None
            if brk and (any(u.span.start >= t.span.end + brk.end() for u in targets[i + 1:] if u.span.kind != "reply")
                        or _era(after[brk.end():]) is not None):
                t.stance = "wants"
    for t in targets:  # "another one", "one more": more picks, no verdict on the last ones
        if t.span.kind == "reply" and _MORE_ONLY.fullmatch(text):
            t.stance = "none"
    for t in targets:  # "the second one looks good" takes that pick
        if t.span.kind == "reply" and _UNDECIDED.search(text):
            t.stance = "none"  # "i'll think about it, thanks": nothing taken
        elif t.span.kind == "reply" and (_PICKED.match(text) or (
                t.stance in ("none", "seen", "wants") and _TAKING.search(text) and not _SEEN_WORDS.search(text))):
            t.stance = "liked"
        elif t.span.kind == "reply" and (complaint or _BARE_NO.match(text)):
            t.stance = "avoid"  # "no", "nope", "next": that pick is out
    for t in targets:  # "seen every harry potter movie", "lord of the rings? seen them all": a series done with
        if _seen_all(text, t):
            t.stance = "seen"
    for t in targets:  # a comparative asks for more of it: "like Inception but funnier" is no "no comedy"
        if t.span.kind == "genre" and _MORE_OF.fullmatch(text[t.span.start:t.span.end]):
            t.stance = "wants"
    for t in targets:  # "something similar to The Matrix" says nothing of having seen it
        if t.span.kind == "movie" and t.stance == "seen" and not _SEEN_WORDS.search(text) and (
                _LIKE_X.search(text[:t.span.start]) or _X_LIKE.match(text[t.span.end:])):
            t.stance = "liked"
    # last, as the rules above settle the first of each pair
    for a, b in zip(targets, targets[1:]):  # "not alien or prometheus", "no harry potter or lord of the rings"
        if (a.span.kind != "reply" != b.span.kind and a.stance in ("avoid", "disliked")
                and b.stance in ("none", "liked", "wants", "seen") and (_OR_NOR.fullmatch(text[a.span.end:b.span.start])
                                                                      or _NEITHER_END.search(text[a.span.end:b.span.start]))):
            b.stance = a.stance if b.span.kind == a.span.kind else "avoid"
    for t in targets:  # "not horror, and not sci-fi either"; "romance isnt my thing, neither is drama"
        if (t.span.kind in ("genre", "person") and t.stance in ("none", "liked", "wants")
                and _EITHER_AFTER.match(text[t.span.end:]) and any(u.stance in ("avoid", "disliked") for u in targets)):
            t.stance = "avoid"


def _with_groups(text: str, targets: list[Target]) -> list[Target]:
    """`targets` with the series, groups and topics `text` names (`FRANCHISES`, `TOPICS`) and action named by what
    is in it ("explosions"), each read as a genre is
    ("no star wars films" rules the series out, "something with vampires" asks for vampire films). It replaces a genre word it covers ("superhero" is no longer all of action, "pixar" all of animation) and,
    said as a series ("the batman ones"), a title; a bare title stays that movie ("I loved Star Wars"). Chat only:
    the labels ECR trains on (`EntityStancer`) keep `named_targets`'."""
    named = franchise_mentions(text) + [(start, end, name, False) for start, end, name in topic_mentions(text)]
    # "nothing with violence please": the violent kinds as one group; "something with explosions": action
    for pattern, name in ((_VIOLENCE, "violence"), (_CHAT_ACTION, "action")):
        for m in pattern.finditer(text):
            if not any(t.span.start < m.end() and m.start() < t.span.end for t in targets):
                targets = [*targets, Target(Span(m.start(), m.end(), "genre"), None, name)]
    for start, end, name, series in sorted(named):
        overlapping = [t for t in targets if t.span.kind != "reply" and t.span.start < end and start < t.span.end]
        if not series and any(t.span.kind != "genre" for t in overlapping):
            continue
        targets = [t for t in targets if t not in overlapping and t.span.kind != "reply"]
        targets.append(Target(Span(start, end, "genre"), None, name))
    return sorted(targets, key=lambda t: t.span.start)


def _suggested_titles(text: str, mentions: list[Mention], suggested: list[tuple[int, str]]) -> list[Mention]:
    """`mentions` with the titles of the last suggestions the message types in any case ("pretty woman? hard
    pass", "nope, saw is too gory"): just shown, they need no capitals. A title of pointing or function words
    only ("It", "Up") stays a word: "seen it" is about the first suggestion, not about It."""
    out = list(mentions)
    for entity, title in suggested:
        if all(w in STOPWORDS for w in _WORD.findall(title.lower())):
            continue
        m = re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text, re.I)
        if m and not any(x.start < m.end() and m.start() < x.end for x in out):
            out.append(Mention(entity, m.start(), m.end(), m.group(), True))
    return sorted(out, key=lambda x: x.start)


def _seen_all(text: str, t: Target) -> bool:
    """Does the message say every film of this series, group or studio was seen ("seen every marvel movie",
    "watched everything by pixar", "lord of the rings? seen them all")?"""
    return (t.span.kind == "genre" and (t.genre in FRANCHISES or t.genre in STUDIOS)
            and bool(_SEEN_ALL_BEFORE.search(text[:t.span.start]) or _SEEN_ALL_AFTER.match(text[t.span.end:])))


def _taken_back(text: str, t: Target, ruled_out: bool, said: bool) -> bool:
    """Does the message withdraw what was said of this person or genre ("never mind the tom hanks thing", "forget
    what i said about romance", or, of one `ruled_out`, "actually stallone is fine")? Only what was `said` before
    can be taken back ("forget adam sandler, anyone but him" rules him out). A genre ruled out needs "what I said
    about", "thing" / "part" after it, or "never mind" ("forget the comedy, i want to cry" rules out a comedy
    nobody asked for); one only wished for is simply dropped ("scifi" ... "forget scifi, a western"). "Horror is
    fine" asks for horror."""
    before, after = text[:t.span.start], text[t.span.end:]
    if ruled_out and _FINE_NOW.match(after):
        return True
    taken = _TAKE_BACK.search(before)
    return bool(taken) and said and (t.span.kind == "person" or bool(_THING.match(after)) or not ruled_out
                                    or "said" in taken.group(0).lower() or taken.group(1).lower().startswith("never"))


def _pointed(text: str, suggested: list[int], asked: int | None = None) -> list[int]:
    """Which of the last suggestions a reaction without a title is about: the ones an ordinal names ("the second
    one", "the last two"), all of them for "them" / "those" / "any of", else ("seen it", "not that one") the
    one the last turn answered a question about (`asked`, even from an earlier list), or the first."""
    m = _ORDINAL.search(text)
    if m and suggested:
        word = (m.group(1) or m.group(3)).lower()
        i = _ORDINALS[word] if word != "middle" else len(suggested) // 2
        if m.group(2):  # "the first two", "the last two"
            return suggested[:2] if i == 0 else suggested[-2:]
        # "seen the first and the third": each one named, in a list
        more, rest = [], text[m.end():]
        while (n := _MORE_ORDINALS.match(rest)) is not None:
            more.append(n.group(1).lower())
            rest = rest[n.end():]
        picked = [suggested[j] for j in dict.fromkeys(
            [i] + [_ORDINALS[o] if o != "middle" else len(suggested) // 2 for o in more]) if -len(suggested) <= j < len(suggested)]
        return picked or suggested[:1]
    if _PLURAL.search(text):
        return suggested
    return [asked] if asked is not None else suggested[:1]


def _share_phrase_stances(text: str, targets: list[Target]) -> None:
    """People and genre words side by side are one phrase ("a Will Ferrell sports comedy"): a part read as saying
    nothing takes the stance of the phrase's other parts (their most common one)."""
    group: list[Target] = []
    for t in [*targets, None]:
        if (t is not None and group and t.span.kind in ("person", "genre")
                and _ADJACENT.fullmatch(text[group[-1].span.end:t.span.start])):
            group.append(t)
            continue
        said = Counter(x.stance for x in group if x.stance != "none")
        if said and len(group) > 1:
            for x in group:
                if x.stance == "none":
                    x.stance = said.most_common(1)[0][0]
        group = [t] if t is not None and t.span.kind in ("person", "genre") else []
    # "no Rocky/boxing stuff", "no gore/horror": a slash puts both words under the "no"
    for t in targets:
        if t.span.kind in ("person", "genre") and _NO_SLASH.search(text[:t.span.start]):
            t.stance = "avoid"
    for before, t in zip([None, *targets], targets):
        if t.span.kind != "genre" or t.stance not in ("disliked", "avoid"):
            continue
        if (before is not None and before.span.kind == "person"
                and _OWNED.fullmatch(text[before.span.end:t.span.start])):
            # "seth rogen comedies are not for me": his films are ruled out, not every comedy
            before.stance = t.stance if before.stance == "none" else before.stance
            t.stance = "none"
        elif _PEOPLE_NOUN.fullmatch(text[t.span.start:t.span.end]) and _MY.search(text[:t.span.start]):
            t.stance = "none"  # "frozen? my kids watched it 100 times" says nothing against family films
    for t in targets:  # "kids are asleep, finally": children, not a kind of movie, without "for" / "movies" around
        if (t.span.kind == "genre" and _KIDS.fullmatch(text[t.span.start:t.span.end])
                and not _FOR_KIDS.search(text[:t.span.start]) and not _KIDS_NOUN.match(text[t.span.end:])):
            t.stance = "none"


def acknowledge(state: ConversationState, targets: list[Target], emotions: Emotions,
                names: dict[int, str] | list[str], relaxed: list | None = None) -> str:
    """The reply's first sentence answers the feeling: what was ruled out is confirmed, a mood is met, a wish that
    had to be relaxed is said; praise only when nothing negative was said."""
    # Confirm what the memory ruled out: "spooky, but no slashers" wants horror, so it is not "no horror"
    negative = [t for t in targets if t.stance in ("disliked", "avoid")
                and (t.genre in state.avoid_genres if t.span.kind == "genre" else
                     t.entity in state.avoid_people if t.span.kind == "person" else True)]
    mood = next((w for w in state.wishes if w.axis == "mood" and w.turn == state.seeker_turns), None)
    parts = []
    said = state.turns[-1][1] if state.turns and state.turns[-1][0] == "seeker" else ""
    complaint = bool(_COMPLAINT.search(said))
    if complaint:
        parts.append("Sorry those missed the mark, let me try again.")
    elif _ABOUT_ME.search(said):
        parts.append("I'm a bot that loves movies, and I'm doing great, thanks! Here's one I'd pick for you."
                     if re.search(r"\bhow|fav", said, re.I) else "I'm a bot that loves movies, here to help you pick one.")
    if negative:  # what was ruled out first: "Titanic was awful" is about Titanic, not a bad day
        # "no horror", "no Adam Sandler", but "not The Great Gatsby" (one movie, not a kind of them)
        kinds = [t.genre or plain_name(names[t.entity]) for t in negative if t.span.kind in ("genre", "person")]
        if _NOT_THEM.search(said) and state.avoid_people:  # "not him": who it resolved to (`_remember`)
            kinds.append(plain_name(names[state.avoid_people[-1]]))
        movies = [plain_name(names[t.entity]) for t in negative if t.span.kind == "movie"]
        ruled_out = " and ".join(f"{word} {' or '.join(dict.fromkeys(xs))}"
                                 for word, xs in (("no", kinds), ("not", movies)) if xs)
        if ruled_out or not complaint:
            parts.append(f"Got it, {ruled_out}." if ruled_out else "Fair enough, that one's off the list.")
    met = next((say for _, _, label, say in _MOODS if mood is not None and label == mood.label), None)
    if met:
        parts.append(met)
    elif parts:
        pass  # a complaint or a question about me was answered
    elif not negative and any(t.stance == "seen" for t in targets):
        many = len([t for t in targets if t.stance == "seen"]) > 1 or bool(_PLURAL.search(said))
        parts.append(f"Ah, you've seen {'those' if many else 'that one'} already.")
    elif not negative:
        primary = emotions[0][0] if emotions else "neutral"
        liked = any(t.stance == "liked" for t in targets)
        reaction = any(t.span.kind == "reply" for t in targets)
        if primary == "negative" and not reaction:
            parts.append("Got it.")  # "something scary but not gory" reads negative; nothing failed to click
        elif primary in ("like", "happy") and not liked:
            # a request read as liking ("una de terror por favor") gets no "Nice one!": nothing was liked yet
            parts.append("Sure thing!" if any(t.stance == "wants" for t in targets) else "Here's an idea.")
        else:
            parts.append(_OPENERS.get(primary, "Here's an idea."))
    parts += [sorry for pattern, sorry in _CANT_FILTER if pattern.search(said)]
    fresh = state.relaxed if relaxed is None else relaxed  # the wishes that newly gave way (`turn_events`)
    if fresh:
        parts.append(f"I couldn't find one that also fits \"{', '.join(w.label or w.axis for w in fresh)}\", "
                     "so here's the closest.")
    return " ".join(parts)


def why(state: ConversationState, movie: Movie, names: dict[int, str] | list[str]) -> str:
    """What the pick has of what was asked: "comedy with Tom Hanks" (facts of the catalogue only)."""
    genres: list[str] = []
    people: list[str] = []
    for w in state.wishes:
        if w in state.relaxed:
            continue
        if w.axis == "genre":  # a mood's genres are a means, not what was asked: no "Pulp Fiction, a comedy"
            genres += [g for v in w.values for g in v.split(COMPOUND) if g in movie.genres and g not in genres][:1]
        elif w.axis == "person":
            # "with Tom Hanks", but "by Wes Anderson" and "written by Stephen King": they are not in it
            people += [f"{'with' if n in movie.stars else 'by' if n in movie.directors else 'written by'} {n}"
                       for n in map(plain_name, (names[p] for p in w.values))
                       if n in movie.stars + movie.directors + movie.writers][:1]
    return " ".join([_AS_NOUN.get(g, f"{g} movie") for g in genres[:1]] + people[:1])


def answer(movie: Movie, question: str, people: list[str] = ()) -> str:
    """A question about a movie answered from its catalogue facts only: whether `people` (named in the question)
    are in it, whether its genres fit a trait asked about ("is it scary?"), its cast, director, plot, or all."""
    name = movie.display

    def names(xs: list[str]) -> str:
        return ", ".join(xs[:-1]) + f" and {xs[-1]}" if len(xs) > 1 else xs[0]

    plot = " ".join(re.split(r"(?<=[.!?])\s+", movie.plot.strip())[:2]) if movie.plot else ""
    kind = "/".join(movie.genres[:2])
    a_kind = f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} film" if kind else "a film"
    trait = next((genres for pattern, genres in _TRAITS if pattern.search(question)), None)
    if _ABOUT_YEAR.search(question):  # "what year is it from?"
        said = f"{movie.title} came out in {movie.year}." if movie.year else f"I don't know when {movie.title} came out."
    elif people:  # "does the second one have jim carrey?"
        crew = movie.stars + movie.directors + movie.writers
        said = " ".join(f"Yes, {p} is in it." if p in movie.stars else f"Yes, {p} made it." if p in crew
                        else f"No, {p} isn't in {name}." for p in people)
        if movie.stars:
            said += f" It stars {names(movie.stars[:2])}."
    elif trait is not None and kind:  # "is it scary?": what its genres say, hedged
        said = f"{'Probably' if set(movie.genres) & trait else 'Probably not'}: {name} is {a_kind}."
        if plot:
            said += f" {plot}"
    elif _ABOUT_WRITER.search(question):
        said = (f"{name} was written by {names(movie.writers[:2])}." if movie.writers
                else f"I don't know who wrote {name}.")
    elif _ABOUT_GENRE.search(question):
        said = f"{name} is {a_kind}" + (f" (also {', '.join(movie.genres[2:4])})" if len(movie.genres) > 2 else "") + "."
    elif _ABOUT_CAST.search(question):
        said = f"{name} stars {names(movie.stars[:3])}." if movie.stars else f"I don't have the cast of {name}."
    elif _ABOUT_DIRECTOR.search(question):
        said = (f"{name} was directed by {names(movie.directors[:2])}." if movie.directors
                else f"I don't know who directed {name}.")
    elif _ABOUT_PLOT.search(question) and plot:
        said = f"{name}: {plot}"
    else:
        said = " ".join(x for x in (
            f"{name} is {a_kind}",
            f"directed by {movie.directors[0]}," if movie.directors else "",
            f"starring {names(movie.stars[:2])}" if movie.stars else "") if x).rstrip(",") + "."
        if plot:
            said += f" {plot}"
    return said + " Want to give it a go, or shall I find something else?"


def template_reply(top: Recommendation, fits: str = "") -> Iterator[str]:
    """A grounded reply from facts only, used when no trained generator is present."""
    yield f"You might like {top.title}{f' ({top.year})' if top.year else ''}"
    if fits:
        yield f", {fits}" if fits.startswith(("with ", "by ", "written by ")) else f", {'an' if fits[0] in 'aeiou' else 'a'} {fits}"
    yield f" — {top.reason}." if top.reason else "."


def _continues(base: Movie, other: Movie) -> bool:
    """Whether `other`'s title continues `base`'s as a sequel's does: "John Wick: Chapter 2", "Toy Story 3", or
    further words from the same director or writer ("The Matrix Reloaded", but not "Up in the Air" after "Up")."""
    title, longer = base.title.lower(), other.title.lower()
    if len(longer) <= len(title) or not longer.startswith(title):
        return False
    rest = longer[len(title):]
    return bool(re.match(_SEQUEL, rest, re.I)) or (
        bool(re.match(r"\s+\w", rest)) and bool(set(base.directors + base.writers) & set(other.directors + other.writers)))


def same_series(a: Movie, b: Movie) -> bool:
    """Whether two movies are one suggestion in a list: one title continues the other (`_continues`), one title
    twice (a remake), or two sequels of one title ("Toy Story 2" and "Toy Story 3", "Blade II" and "Blade:
    Trinity")."""
    stems = [re.split(_SEQUEL, m.title.lower(), maxsplit=1, flags=re.I)[0].strip() for m in (a, b)]
    sequels = stems[0] != a.title.lower() or stems[1] != b.title.lower()
    return (a.title.lower() == b.title.lower() or _continues(a, b) or _continues(b, a)
            or (sequels and stems[0] == stems[1] and len(stems[0]) >= 3))


def plain_name(graph_name: str) -> str:
    """A graph name as the catalogue and people spell it, without its qualifier: "Chris Evans (actor)" -> "Chris
    Evans", "Titanic (1997 film)" -> "Titanic"."""
    return TITLE_QUALIFIER.sub("", graph_name)


def _era(text: str) -> tuple[int | None, int | None] | None:
    """(first year or None, last year or None) the message asks for, or None."""
    m = _NEGATED_YEAR.search(text)
    if m:
        year = _year(m.group(2))
        return (year, None) if m.group(1).lower() in ("before", "earlier than", "older than") else (None, year)
    m = _YEAR_FROM.search(text)
    if m:
        return _year(next(g for g in m.groups() if g)), None
    m = _YEAR_UNTIL.search(text)
    if m:
        if _ERA_NOT.search(text[:m.start()]):  # "hates pre-2000": from then on
            return _year(m.group(1)), None
        return None, _year(m.group(1)) - 1
    m = _ONE_YEAR.search(text)
    if m:
        return _year(m.group(1)), _year(m.group(1))
    m = _DECADES.search(text)  # "70s or 80s": both; "in my 30s or 40s" is an age
    if m and not re.search(r"\b(my|our|his|her|their)\s*$", text[:m.start()], re.I):
        first, last = _year(m.group(1)), _year(m.group(2)) + 9
        return (last + 1, first - 1) if _ERA_NOT.search(text[:m.start()]) else (first, last)
    m = _DECADE.search(text)
    if m and not re.search(r"\b(my|our|his|her|their)\s*$", text[:m.start()], re.I) and not re.search(
            r"\b(grew up|growing up|born|raised)(\s+in)?(\s+the)?\s+\S+$", text[:m.end()], re.I):  # "grew up in the 80s"
        first = _year(next(g for g in m.groups() if g))
        # "nothing from the 80s": any year but those (first > last, `_wish_mask`)
        return (first + 10, first - 1) if _ERA_NOT.search(text[:m.start()]) else (first, first + 9)
    if _SILENT.search(text):  # the catalogue has no colour: its years stand in
        return None, 1929
    if _BLACK_AND_WHITE.search(text):
        return None, 1959
    m = _LAST_YEARS.search(text)
    if m:  # counted back from the catalogue's newest movies (ReDial's), not from today
        n = m.group(1).lower()
        return CATALOGUE_YEAR - int(_NUMBER_WORDS.get(n, n)), None
    return None


def _year(word: str) -> int:
    y = word.lstrip("'").lower()
    if y.endswith("s") and len(y) == 3:  # "90s" -> 1990, "10s" -> 2010
        decade = int(y[:-1])
        return (1900 if decade >= 30 else 2000) + decade
    return int(y.rstrip("s"))


def _is_closing(text: str) -> bool:
    return bool(_PICKED.match(text) or _DONE.search(text)) or (bool(_CLOSING.search(text)) and not _REQUEST.search(text))


def _apostrophes(text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    """`text` with the apostrophes chat leaves out put back ("dont want" -> "don't want", which the stance reader
    knows far better), and `spans` moved to match."""
    out, shifts = [], []
    last = 0
    for m in _NO_APOSTROPHE.finditer(text):
        out += [text[last:m.start(2)], "'"]
        shifts.append(m.start(2))
        last = m.start(2)
    if not shifts:
        return text, spans
    out.append(text[last:])

    def moved(i: int) -> int:
        return i + bisect_right(shifts, i - 1) if shifts else i

    return "".join(out), [replace(s, start=moved(s.start), end=moved(s.end)) for s in spans]


def _cut(text: str, spans: list[Span]) -> str:
    for s in sorted((s for s in spans if s.kind in ("movie", "person")), key=lambda s: -s.start):
        text = text[:s.start] + " " + text[s.end:]
    return text


def _add(items: list, value) -> None:
    if value not in items:
        items.append(value)


def _discard(items: list, value) -> None:
    if value in items:
        items.remove(value)


# ---------------------------------------------------------------- artifact loading

def load_scorer(kg: KnowledgeGraph, artifacts: Path, spec: str | None) -> Recommender:
    """A trained recommender run folder (`ecrs train recommender`), else popularity over the prepared samples.

    `spec=None` takes the default ECR run (`make run` trains it) when present; `spec="popularity"` forces the baseline.
    """
    default = artifacts / DEFAULT_RECOMMENDER
    if spec is None and (default / "model.pt").exists():
        spec = str(default)
    if spec and spec != "popularity":
        # One torch thread: a chat turn scores one context (ops too small to split), and with OpenMP's spinning
        # a second thread fighting the generator or another process for 2 cores made a turn ~10x slower.
        # Turns are embedded by the int8 MiniLM (same test recall as the float one, ~1.6x faster per turn).
        rec = TrainedRecommender.load(spec, kg=kg, threads=1, live_int8=True)
        rec.warm_up()  # at startup, not in the first turn
        return rec
    model = Popularity()
    model.fit(load_samples(artifacts / "data", "redial", "train"), kg)
    return model


def default_generator(artifacts: Path) -> str | None:
    """What replies when no generator is named: Qwen2.5-1.5B with the friend prompt once installed, else the
    fine-tuned SmolLM2 once trained, else None (the template)."""
    if qwen_installed("1.5b"):
        return DEFAULT_FRIEND
    tuned = artifacts / DEFAULT_GENERATOR
    return str(tuned) if (tuned / "generator.json").exists() else None


def load_generator(artifacts: Path, spec: str | None, max_tokens: int | None = None,
                   linker=None, n_threads: int = 1) -> ResponseGenerator | None:
    """A fine-tuned generator folder (`ecrs train generator`); `None` takes the default (`default_generator`);
    `"template"` (or nothing installed or trained) gives the grounded template reply, `"zero-shot"` the base SmolLM2
    with the ECR prompt, `"friend:<base>"` a base model zero-shot with the `friend` prompt (genres, plot, the
    person's last message, and what a good reply is; `<base>`: smollm2, qwen-0.5b, qwen-1.5b or a GGUF file).
    `max_tokens` overrides the reply's length; `linker` is the pipeline's (its grounding check reuses it instead
    of building a second one); `n_threads`: llama.cpp threads."""
    if n_threads < 1:
        raise EcrsError(f"llm_threads must be >= 1, got {n_threads}")
    if spec is None:
        spec = default_generator(artifacts)
    if not spec or spec == "template":
        return None
    if max_tokens is not None and max_tokens < 1:
        raise EcrsError(f"reply tokens must be >= 1, got {max_tokens}")
    length = {} if max_tokens is None else {"max_tokens": max_tokens}
    if spec == "zero-shot":
        return ResponseGenerator.zero_shot(linker=linker, n_threads=n_threads, **length)
    if spec.startswith("friend:"):
        return ResponseGenerator.zero_shot(resolve_base(spec.removeprefix("friend:")), linker=linker, name=spec,
                                           format="friend", dialogue=True, n_turns=FRIEND_TURNS,
                                           n_threads=n_threads, **length)
    if not (Path(spec) / "generator.json").exists():
        raise EcrsError(f"{spec}: no trained generator here (train one with `ecrs train generator`, or set "
                        "generator=template, generator=zero-shot or generator=friend:qwen-1.5b)")
    return ResponseGenerator.load(spec, linker=linker, n_threads=n_threads, **length)


__all__ = ["ConversationState", "Done", "EmpatheticRecommender", "Missing", "Recommendation", "Recommended",
           "ReplyPiece", "TurnEvent", "TurnResult", "Understood", "collect"]
