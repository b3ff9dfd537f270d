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
