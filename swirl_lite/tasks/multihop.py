"""Multihop: a built-in generator of a small invented world and 2-3-hop questions over it (the CPU
search task, the search analogue of `arithmetic`).

Not in the paper: HotpotQA cannot be downloaded here and is too hard for a 135M model, so this task
keeps HotpotQA's shape (a question, encyclopedia paragraphs, gold supporting paragraphs, a short
answer graded by EM/F1, BM25 search over the split's paragraphs) and makes each part easy:
- every paragraph is one or two short sentences about one entity, titled with its name;
- names are invented words (`Borvel`, `Quillan Press`, `Maren Dorvik`), so each is a rare token that
  BM25 finds, and a paragraph names its own entity two or three times, others' once, so a query that
  is just a name ranks that entity's paragraph first;
- every question names exactly one entity, and each hop's query is a name: hop 1 the question's own
  entity, each later hop the name the previous paragraph gave. A small model only has to copy a
  name from the question, then from a result, which is what it can do.

The world of a split: 16 towns (each in one of 5 regions, on one of 6 rivers), 24 organisations
(each based in a town, founded by a person), 48 people (born in a town, working for an
organisation). Questions follow 10 relation chains (`CHAINS`), 7 of two hops and 3 of three, about
384 per split (31% three-hop). Regions and rivers are attributes, not paragraphs.

Deterministic: the world of (split, seed) is drawn from `Random(f"{seed}:{split}:world")`.
Splits never share an entity: an invented word belongs to the split named by a hash of it (80%
train, 10% validation, 10% test), and each split draws its names only from its own words, whatever
the seed. `meta["paragraphs"]` is HotpotQA's layout (gold paragraphs first, in hop order, then 5
distractors, the confusable ones first: paragraphs that name a gold entity); `meta["hops"]` the
gold hops ({query, title, answer}); the search corpus is every paragraph of the split's world
(METHOD.md §1: the split's own articles), not only those of the loaded questions.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache

from swirl_lite.tasks.base import Document, Example
from swirl_lite.tasks.common import BaseTask
from swirl_lite.tasks.loading import doc_id
from swirl_lite.tasks.prompts import Demonstration, DemoStep

BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}
SPLIT_NAMES = {"train": "train", "validation": "validation", "dev": "validation", "test": "test"}
SIZES = {"town": 16, "region": 5, "river": 6, "org": 24, "person": 48}
DISTRACTORS = 5  # per question, besides its 2-3 gold paragraphs

ONSETS = ("b", "br", "d", "dr", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
VOWELS = ("a", "e", "i", "o", "u", "ai")
MIDDLES = ("rv", "lm", "nd", "st", "rk", "l", "n", "r", "v", "th")
CODAS = ("", "n", "l", "r", "s", "k", "m")
FIRST_NAMES = ("Maren", "Ivo", "Lena", "Tomas", "Ada", "Felix", "Nora", "Otto", "Selma", "Jonas",
               "Ruth", "Emil", "Vera", "Anton", "Clara", "Hugo", "Irma", "Paul", "Greta", "Karl")
ORG_KINDS = (("Press", "a publishing house"), ("Works", "an engineering firm"),
             ("Institute", "a research institute"), ("Brewery", "a brewery"),
             ("Museum", "a museum"), ("Shipyard", "a shipyard"), ("Orchestra", "an orchestra"))
PROFESSIONS = ("painter", "engineer", "chemist", "novelist", "architect", "composer", "surveyor", "botanist")


def bucket(word: str) -> int:
    return hashlib.sha256(word.lower().encode()).digest()[0] % 10


def invented_words(split: str, seed: int, n: int) -> list[str]:
    """`n` distinct invented words of `split`'s hash bucket, in a seeded order."""
    r = random.Random(f"{seed}:{split}:words")
    taken = {f.lower() for f in FIRST_NAMES}
    words: list[str] = []
    while len(words) < n:
        w = (r.choice(ONSETS) + r.choice(VOWELS) + r.choice(MIDDLES) + r.choice(VOWELS) + r.choice(CODAS)).capitalize()
        if w.lower() not in taken and bucket(w) in BUCKETS[split]:
            taken.add(w.lower())
            words.append(w)
    return words


@dataclass
class Entity:
    name: str
    kind: str  # town | org | person
    facts: dict[str, str] = field(default_factory=dict)  # relation -> the name it points to
    text: str = ""


@dataclass
class World:
    split: str
    seed: int
    entities: dict[str, Entity]  # by name

    @property
    def key(self) -> str:
        return f"{self.split}:{self.seed}"

    def paragraph(self, name: str) -> dict:
        e = self.entities[name]
        return {"id": doc_id(e.name, e.text), "title": e.name, "text": e.text}


def _describe(e: Entity, kinds: dict[str, str], professions: dict[str, str]) -> str:
    f = e.facts
    if e.kind == "town":
        return f"{e.name} is a town in the region of {f['region']}. {e.name} lies on the river {f['river']}."
    if e.kind == "org":
        return f"{e.name} is {kinds[e.name]} based in {f['town']}. It was founded by {f['founder']}."
    surname, job = e.name.split()[-1], professions[e.name]
    article = "an" if job[0] in "aeiou" else "a"
    return f"{e.name} is {article} {job} born in {f['birthplace']}. {surname} works for {f['employer']}."


@lru_cache(maxsize=8)
def build_world(split: str, seed: int) -> World:
    """The world of `split` (train, validation or test): deterministic given (split, seed)."""
    r = random.Random(f"{seed}:{split}:world")
    words = iter(invented_words(split, seed, sum(SIZES.values())))
    regions = [next(words) + "ia" for _ in range(SIZES["region"])]
    rivers = [next(words) for _ in range(SIZES["river"])]
    towns = [next(words) for _ in range(SIZES["town"])]
    kinds: dict[str, str] = {}
    orgs = []
    for _ in range(SIZES["org"]):
        suffix, what = r.choice(ORG_KINDS)
        orgs.append(f"{next(words)} {suffix}")
        kinds[orgs[-1]] = what
    people = [f"{r.choice(FIRST_NAMES)} {next(words)}" for _ in range(SIZES["person"])]
    professions = {p: r.choice(PROFESSIONS) for p in people}
    entities: dict[str, Entity] = {}
    for t in towns:
        entities[t] = Entity(t, "town", {"region": r.choice(regions), "river": r.choice(rivers)})
    founders = r.sample(people, len(orgs))
    for o, founder in zip(orgs, founders, strict=True):
        entities[o] = Entity(o, "org", {"town": r.choice(towns), "founder": founder})
    for p in people:
        entities[p] = Entity(p, "person", {"birthplace": r.choice(towns), "employer": r.choice(orgs)})
    for e in entities.values():
        e.text = _describe(e, kinds, professions)
    return World(split, seed, entities)


# A chain: the kind of the entity the question names, the relations followed from it (one hop
# each), and the question with {e} for that entity's name.
CHAINS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("org", ("founder", "birthplace"), "Where was the founder of {e} born?"),
    ("org", ("town", "region"), "In which region is the town where {e} is based?"),
    ("org", ("town", "river"), "Which river flows through the town where {e} is based?"),
    ("person", ("birthplace", "region"), "In which region is the town where {e} was born?"),
    ("person", ("birthplace", "river"), "Which river flows through the town where {e} was born?"),
    ("person", ("employer", "founder"), "Who founded the organisation that {e} works for?"),
    ("person", ("employer", "town"), "In which town is the organisation that {e} works for based?"),
    ("org", ("founder", "birthplace", "region"), "In which region was the founder of {e} born?"),
    ("person", ("employer", "town", "river"), "Which river flows through the town where the organisation that {e} works for is based?"),
    ("person", ("employer", "founder", "birthplace"), "Where was the founder of the organisation that {e} works for born?"),
)
LABELS = {"founder": "founder", "birthplace": "birthplace", "town": "town", "region": "region",
          "river": "river", "employer": "employer"}


def _question(world: World, start: str, chain: tuple[str, ...], template: str, index: int) -> Example | None:
    """The question of `chain` from `start`, or None when the chain visits an entity twice."""
    hops, name = [], start
    for relation in chain:
        answer = world.entities[name].facts[relation]
        hops.append({"query": name, "title": name, "relation": relation, "answer": answer})
        name = answer
    titles = [h["title"] for h in hops]
    if len(set(titles)) < len(titles) or name in titles:
        return None
    gold = [world.paragraph(t) | {"supporting": True} for t in titles]
    r = random.Random(f"{world.key}:{index}:distractors")
    mentioned = sorted(n for n, e in world.entities.items()
                       if n not in titles and any(t in e.text for t in titles))  # confusable first
    others = sorted(n for n in world.entities if n not in titles and n not in mentioned)
    picked = r.sample(mentioned, min(DISTRACTORS, len(mentioned)))
    picked += r.sample(others, DISTRACTORS - len(picked))
    distractors = [world.paragraph(n) | {"supporting": False} for n in picked]
    meta = {"paragraphs": gold + distractors, "hops": hops, "world": world.key}
    return Example(f"multihop-{world.key.replace(':', '-')}-{index}", template.format(e=start), name, meta=meta)


def questions(split: str, seed: int) -> list[Example]:
    """Every question of the world of (split, seed), in a seeded shuffled order."""
    world = build_world(split, seed)
    out: list[Example] = []
    for start in world.entities.values():
        for kind, chain, template in CHAINS:
            if kind == start.kind:
                ex = _question(world, start.name, chain, template, len(out))
                if ex is not None:
                    out.append(ex)
    random.Random(f"{seed}:{split}:order").shuffle(out)
    return out


def gold_demonstration(example: Example) -> Demonstration:
    """The gold trajectory: search each hop's entity by name, read its paragraph, then answer. Each
    result is what the search tool prints for that paragraph (`Title: text`)."""
    texts = {p["title"]: p["text"] for p in example.meta["paragraphs"]}
    steps, hops = [], example.meta["hops"]
    for i, hop in enumerate(hops):
        if i == 0:
            thought = f"First I look up {hop['query']}."
        else:
            prev = hops[i - 1]
            thought = f"The {LABELS[prev['relation']]} of {prev['query']} is {prev['answer']}. Now I look up {hop['query']}."
        steps.append(DemoStep(thought, "search_query", hop["query"], f"{hop['title']}: {texts[hop['title']]}"))
    last = hops[-1]
    steps.append(DemoStep(f"The {LABELS[last['relation']]} of {last['query']} is {last['answer']}.", "answer", example.answer))
    return Demonstration(example.question, tuple(steps), example.id)


class Multihop(BaseTask):
    name = "multihop"
    kind = "qa"
    default_tools = ("search",)
    max_steps = 5  # the paper's cap for multi-hop QA; questions need 2-3 searches and an answer
    default_grader = "f1"
    demo_sources = ("builtin", "train", "similar")

    def source(self) -> str:
        return "generated"

    def load(self, split: str, limit: int | None = None, seed: int = 0, shuffle: bool = True) -> list[Example]:
        """`limit` questions of `split` (all, ~384, when unset); `shuffle` has no effect (already random)."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"data.split: multihop has splits {', '.join(SPLIT_NAMES)}, not {split!r}")
        self.skip_reasons.clear()
        return questions(SPLIT_NAMES[split], seed)[:limit]

    def demonstrations(self, example: Example, n: int) -> list[Demonstration]:
        """`data.demonstrations_from`: builtin (written), train (the first train questions' gold
        trajectories), similar (the train questions nearest this one, `similar.py`)."""
        source = self.cfg.demonstrations_from
        if n <= 0 or source == "builtin":
            return super().demonstrations(example, n)
        pool = questions("train", self.cfg.seed)
        if source == "train":
            return [gold_demonstration(ex) for ex in pool[: n + 1] if ex.id != example.id][:n]
        # A train question's nearest neighbours often name its own entity ("Who founded the
        # organisation that X works for?" beside "Where was X born?") and would show its gold
        # paragraphs; a test question's never do (no shared entity). Skipping them keeps the
        # prompts RL trains on like the ones it is tested on.
        names = {h["query"] for h in example.meta.get("hops", ())} | {example.answer}
        near = self.nearest_demonstrations(example, n + 8, lambda: [gold_demonstration(ex) for ex in pool])
        return [d for d in near if not names & {s.query for s in d.steps}][-n:]

    def gold_solution(self, example: Example) -> Demonstration | None:
        return gold_demonstration(example) if example.meta.get("hops") else None

    def corpus(self, examples: list[Example]) -> list[Document]:
        """Every paragraph of the worlds the examples come from (the split's database, METHOD.md §1),
        then any other paragraph the examples carry."""
        docs: dict[str, Document] = {}
        for key in dict.fromkeys(ex.meta.get("world") for ex in examples if ex.meta.get("world")):
            split, seed = key.rsplit(":", 1)
            world = build_world(split, int(seed))
            for name in world.entities:
                p = world.paragraph(name)
                docs.setdefault(p["id"], Document(p["id"], p["title"], p["text"]))
        for d in super().corpus(examples):
            docs.setdefault(d.id, d)
        return list(docs.values())
