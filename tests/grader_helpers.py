"""User-style graders for the `module:function` grader tests."""


def starts_with(prediction: str, gold: str) -> bool:
    return prediction.lower().startswith(gold.lower())


def half_score(prediction: str, gold: str) -> float:
    return 0.5
