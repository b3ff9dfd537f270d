"""The calculator behind `<math_exp>`: a small, bounded, exact arithmetic evaluator.

METHOD.md §1: the paper uses a SymPy-style evaluator (`48 / 2 -> 24.0`). Model output is hostile
input, so the raw text never reaches eval/exec/sympify. We parse it with `ast.parse(mode="eval")`
and walk the tree ourselves, allowing only numbers, + - * / // % **, unary signs, parentheses and a
few named functions. We chose our own walker over `simpleeval` because the bounds are the point:
simpleeval caps each power operand at 4,000,000, yet `999999**999999` (14 characters) still runs
for ~6 s inside it (measured, simpleeval 1.0.8), and it computes in floats (`0.1+0.2` ->
`0.30000000000000004`). Here every operation checks the size of its result *before* doing the work,
so no timer (a thread cannot be killed) is ever needed to stop a slow expression.

Arithmetic is exact (fractions.Fraction) wherever it can be, so `0.1+0.2` prints `0.3`; results
print plainly (`24`, `2.5`, `0.3333333333`: ten significant digits when a value does not
terminate). Accepted sugar: `×`/`÷`/`x` between numbers, `^` as power, `1,200`, `$`, `12.5%` (= 0.125),
`20% of 50`, implicit `2(3+4)`, and a trailing `= ...` (the model's own guess) is ignored. Bounds:
200 characters, 400 syntax nodes, nesting depth 100, |value| <= 1e100, exact values <= 4000 bits
(larger powers fall back to floats), a cooperative deadline. Any failure is a short `error: ...`
string returned as the tool result, so the model can read it and recover.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from decimal import Context, Decimal
from fractions import Fraction

MAX_CHARS = 200
MAX_NODES = 400
MAX_DEPTH = 100
MAX_ABS = 10**100
MAX_BITS = 4000

Number = Fraction | float


class CalcError(Exception):
    """A bad or out-of-bounds expression; the message becomes `error: MESSAGE`."""


# ---------------------------------------------------------------- text normalisation

_SYMBOLS = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "$": None, "€": None, "£": None})
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_PERCENT_OF = re.compile(_NUM + r"\s*%\s*of\b", re.IGNORECASE)
_PERCENT = re.compile(_NUM + r"\s*%(?!\s*[\d.(])")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d.(])")
_IMPLICIT = re.compile(r"(?<=[\d)])\s*\((?!\s*\))")
_THOUSANDS_TAIL = re.compile(r"\d{3}(?!\d)")


def _drop_thousands_commas(text: str) -> str:
    """`1,200` -> `1200`, but `max(1,200)` keeps its argument separator: inside call parentheses a
    comma always separates arguments."""
    out: list[str] = []
    calls: list[bool] = []  # one entry per open parenthesis: is it a function call?
    for i, ch in enumerate(text):
        if ch == "(":
            prev = "".join(out).rstrip()[-1:]
            calls.append(prev.isalpha() or prev == "_")
        elif ch == ")" and calls:
            calls.pop()
        elif ch == "," and not (calls and calls[-1]):
            if out and out[-1].isdigit() and _THOUSANDS_TAIL.match(text, i + 1):
                continue
        out.append(ch)
    return "".join(out)


def normalize(expr: str) -> str:
    """Rewrite the sugar models write into plain Python arithmetic syntax."""
    expr = expr.strip().strip("`").strip()
    if "=" in expr and "==" not in expr:
        expr = expr.split("=", 1)[0]  # "48/2 = 24": evaluate the left side only
    expr = expr.translate(_SYMBOLS).replace("^", "**")
    expr = _drop_thousands_commas(expr)
    expr = _PERCENT_OF.sub(r"(\1/100)*", expr)
    expr = _PERCENT.sub(r"(\1/100)", expr)
    expr = _TIMES_X.sub("*", expr)
    return _IMPLICIT.sub("*(", expr).strip()


# ---------------------------------------------------------------- values

def _check(value: Number) -> Number:
    if isinstance(value, float):
        if math.isnan(value):
            raise CalcError("undefined result")
        if math.isinf(value) or abs(value) > MAX_ABS:
            raise CalcError("result too large")
        return value
    if abs(value) > MAX_ABS:
        raise CalcError("result too large")
    if value.denominator.bit_length() > MAX_BITS:
        return float(value)  # a vanishingly small fraction: keep it approximate
    return value


def _both_exact(a: Number, b: Number) -> bool:
    return isinstance(a, Fraction) and isinstance(b, Fraction)


def _power(a: Number, b: Number) -> Number:
    if isinstance(b, Fraction) and b.denominator == 1:
        e = b.numerator
        if a == 0 and e < 0:
            raise CalcError("division by zero")
        if isinstance(a, Fraction):
            if a in (0, 1) or e == 0:
                return a**e
            if a == -1:
                return Fraction(1 if e % 2 == 0 else -1)
            # Size of the exact result, known before computing it.
            bits = max(a.numerator.bit_length(), a.denominator.bit_length()) * abs(e)
            if bits <= MAX_BITS:
                return a**e
    elif a < 0:
        raise CalcError("fractional power of a negative number")
    try:
        return float(a) ** float(b)  # O(1) however large the exponent
    except OverflowError:
        raise CalcError("result too large") from None
    except ZeroDivisionError:
        raise CalcError("division by zero") from None


def _round(x: Number, digits: Number = Fraction(0)) -> Number:
    """Half away from zero (2.5 -> 3), which is what people mean; Python's round() is banker's."""
    if not (isinstance(digits, Fraction) and digits.denominator == 1 and abs(digits) <= 20):
        raise CalcError("round() digits must be a whole number between -20 and 20")
    exact = Fraction(repr(x)) if isinstance(x, float) else x
    scale = Fraction(10) ** int(digits)
    y = abs(exact) * scale
    rounded = Fraction(math.floor(y + Fraction(1, 2))) / scale
    return rounded if exact >= 0 else -rounded


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalcError("square root of a negative number")
    if isinstance(x, Fraction):
        n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if n * n == x.numerator and d * d == x.denominator:
            return Fraction(n, d)
    return math.sqrt(x)


def _whole(fn):
    return lambda x: Fraction(fn(x))


FUNCTIONS = {
    "sqrt": (_sqrt, 1, 1),
    "round": (_round, 1, 2),
    "floor": (_whole(math.floor), 1, 1),
    "ceil": (_whole(math.ceil), 1, 1),
    "abs": (abs, 1, 1),
    "min": (min, 1, 20),
    "max": (max, 1, 20),
}
CONSTANTS = {"pi": math.pi, "e": math.e}
_FORBIDDEN = {
    ast.Attribute: "attribute access is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Compare: "comparisons are not supported",
    ast.BoolOp: "and/or are not supported",
    ast.Tuple: "one expression per call (found a tuple)",
    ast.NamedExpr: "assignment is not allowed",
    **dict.fromkeys((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "comprehensions are not allowed"),
}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.Mod: operator.mod}


class _Evaluator:
    def __init__(self, deadline: float):
        self.deadline = deadline

    def eval(self, node: ast.AST, depth: int = 0) -> Number:
        if depth > MAX_DEPTH:
            raise CalcError("expression too deeply nested")
        if time.perf_counter() > self.deadline:
            raise CalcError("timed out")
        if isinstance(node, ast.Expression):
            return self.eval(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CalcError("only numbers are allowed")
            if isinstance(v, float) and not math.isfinite(v):  # a literal like 1e999 parses as inf
                raise CalcError("number too large")
            return _check(Fraction(repr(v)) if isinstance(v, float) else Fraction(v))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = self.eval(node.operand, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self.eval(node.left, depth + 1), self.eval(node.right, depth + 1)
            return _check(self.binop(node.op, a, b))
        if isinstance(node, ast.Call):
            return _check(self.call(node, depth))
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise CalcError(f"unknown name {node.id[:30]!r}")
        raise CalcError(_FORBIDDEN.get(type(node), f"{type(node).__name__} is not supported"))

    def binop(self, op: ast.operator, a: Number, b: Number) -> Number:
        if isinstance(op, ast.Pow):
            return _power(a, b)
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise CalcError("division by zero")
        if not _both_exact(a, b):
            a, b = float(a), float(b)
        if isinstance(op, ast.FloorDiv):
            return Fraction(a // b)
        if type(op) not in _ARITHMETIC:
            raise CalcError(f"operator {type(op).__name__} is not supported")
        return _ARITHMETIC[type(op)](a, b)

    def call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name):
            raise CalcError(_FORBIDDEN.get(type(node.func), "only named functions can be called"))
        name = node.func.id
        if name not in FUNCTIONS:
            raise CalcError(f"unknown function {name[:30]!r}; use {', '.join(FUNCTIONS)}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise CalcError(f"{name}() takes plain arguments only")
        fn, lo, hi = FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            raise CalcError(f"{name}() takes {lo} to {hi} arguments" if lo != hi else f"{name}() takes {lo} argument")
        return fn(*(self.eval(a, depth + 1) for a in node.args))


# ---------------------------------------------------------------- formatting and the tool

def format_value(value: Number) -> str:
    """`24`, `0.3`, `2.5`, `0.3333333333`, `1.5e+50`: exact when short, else 10 significant digits,
    positional unless the value is below 1e-12 or above 1e15."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        d = value.denominator
        for p in (2, 5):
            while d % p == 0:
                d //= p
        if d == 1:  # terminating decimal: print it exactly when it is short
            text = format(Context(prec=60).divide(Decimal(value.numerator), Decimal(value.denominator)), "f")
            if len(text) <= 20:
                return text
        value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.10g}"
    if "e" in text and 1e-12 <= abs(value) < 1e15:
        text = format(Decimal(text), "f")  # positional: small models misread 3.4e-06
    return text


def evaluate(expr: str, timeout_s: float = 0.1) -> str:
    """The result of one expression as printed text, or `error: ...`; never raises."""
    if not isinstance(expr, str):
        return "error: not a string"
    if len(expr) > MAX_CHARS:  # first, so a huge input costs nothing
        return f"error: expression too long ({len(expr)} characters; at most {MAX_CHARS})"
    try:
        text = normalize(expr)
        if not text:
            return "error: empty expression"
        if len(text) > 2 * MAX_CHARS:  # the sugar rewrites can lengthen it a little
            return "error: expression too long"
        tree = ast.parse(text, mode="eval")
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            return "error: expression too complex"
        value = _Evaluator(time.perf_counter() + timeout_s).eval(tree)
        return format_value(value)
    except CalcError as exc:
        return f"error: {exc}"
    except SyntaxError:
        return "error: invalid syntax"
    except (RecursionError, MemoryError):
        return "error: expression too complex"
    except (ArithmeticError, ValueError, TypeError) as exc:
        return f"error: {type(exc).__name__}"


class Calculator:
    """The `calculator` tool (tag `math_exp`): `batch(["48/2"]) -> ["24"]`."""

    name = "calculator"
    tag = "math_exp"
    description = (
        "the calculator: <math_exp>EXPRESSION</math_exp> with numbers, + - * / ** and parentheses, "
        "for example <math_exp>(12 + 8) / 4</math_exp>"
    )
    judge_hint = (
        "The assistant solves a math word problem with a calculator, one calculation per step. "
        "Judge ONLY the last step, a calculation.\n"
        "GOOD: the expression uses the right numbers from the problem or from earlier results and "
        "computes a quantity that is a correct next step towards the answer.\n"
        "BAD: it uses wrong numbers or the wrong operation, computes something the problem does not "
        "need, or repeats an earlier calculation."
    )

    def __init__(self, timeout_s: float = 0.1):
        self.timeout_s = timeout_s

    def batch(self, queries: list[str]) -> list[str]:
        # Each expression costs microseconds; a pool would cost more than it saves.
        return [evaluate(q, self.timeout_s) for q in queries]
