"""The verdict cache: a sqlite file of verdicts keyed by (judge identity, state, action), so a rerun,
a second filter strategy or the RL reward never judges the same step twice."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from swirl_lite.schema import SubTrajectory, Verdict


class VerdictCache:
    """A sqlite file of verdicts keyed by sha256(identity, state, action)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix != ".sqlite":
            path = path / "verdicts.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    @staticmethod
    def key(identity: str, state: Any, action: Any) -> str:
        blob = json.dumps([identity, state, action], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM verdicts WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, items: dict[str, dict]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO verdicts (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
        )
        self.db.commit()


class CachedScorer:
    """Wraps a scorer: cached verdicts are returned as they are; only misses reach the judge."""

    def __init__(self, inner: Any, cache: VerdictCache):
        self.inner, self.cache, self.identity = inner, cache, inner.identity
        self.hits = self.misses = 0

    def score(self, subs: list[SubTrajectory]) -> list[Verdict]:
        keys = [self.cache.key(self.identity, s.prompt, s.completion) for s in subs]
        found = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(subs) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self.inner.score([subs[i] for i in todo])
            new = {keys[i]: {"label": v.label, "score": v.score, "rationale": v.rationale} for i, v in zip(todo, fresh, strict=True)}
            self.cache.put_many(new)
            found.update(new)
        return [Verdict(s.id, self.identity, **found[k]) for s, k in zip(subs, keys, strict=True)]
