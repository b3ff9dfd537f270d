"""User-style tools for the import-path tool tests."""


class Echo:
    name = "echo"
    tag = "echo"

    def batch(self, queries):
        return list(queries)


class Upper:
    name = "upper"
    tag = "upper"

    def __init__(self, cfg):
        self.limit = cfg.search_max_chars

    def batch(self, queries):
        return [f"{q.upper()}:{self.limit}" for q in queries]


class NotATool:
    pass


class Lookup:
    """A user tool with a tag no built-in knows: a tiny fact table."""

    name = "lookup"
    tag = "lookup"
    description = "the fact table: <lookup>KEY</lookup> returns the fact stored under KEY"
    judge_hint = "A lookup step is GOOD when its KEY names a fact the question needs (lookup-hint)."
    FACTS = {"capital of France": "Paris", "capital of Peru": "Lima"}

    def batch(self, queries):
        return [self.FACTS.get(q, "no such fact") for q in queries]
