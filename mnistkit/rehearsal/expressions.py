"""Argo's template text: ``{{...}}`` substitution and ``when`` expressions.

* ``substitute(text, scope)`` replaces every ``{{ name }}`` (spaces trimmed, as Argo's ``template.Replace``
  does) with ``scope[name]``; a name the scope lacks is an error naming it, as Argo fails a step with
  ``failed to resolve {{...}}``. Expression tags ``{{=...}}`` are evaluated by ``exprtags.evaluate_tag``.
* ``evaluate_when(expr)`` decides a step's ``when`` after substitution, with the semantics of Argo's
  ``shouldExecute`` (workflow/controller/steps.go): a govaluate expression whose bare words are strings,
  so ``Failed != Succeeded`` and ``2 != 0`` both work. Supported: numbers, quoted strings, bare words,
  ``true``/``false``, ``== != < <= > >=``, ``in (a, b)``, ``&& || !``, ``+ - * / %`` and parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mnistkit.errors import ConfigError

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["evaluate_when", "placeholders", "substitute"]

_PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}")
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\""
    r"|(?P<op>==|!=|>=|<=|&&|\|\||[<>!+\-*/%(),])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)

Value = float | str | bool | tuple  # tuple: an `in` list


def placeholders(text: str) -> list[str]:
    """The names of every ``{{...}}`` in ``text``."""
    return [m.strip() for m in _PLACEHOLDER_RE.findall(text)]


def substitute(text: str, scope: Mapping[str, str], where: str = "template") -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if name.startswith("="):  # an expression tag, {{=asInt(workflow.parameters["tf-worker"]) + 1}}
            from mnistkit.rehearsal.exprtags import evaluate_tag

            return evaluate_tag(name[1:], scope, where)
        if name not in scope:
            raise ConfigError(f"{where}: failed to resolve {{{{{name}}}}}", field="template", value=name)
        return str(scope[name])

    return _PLACEHOLDER_RE.sub(one, text)


def substitute_all(obj: JsonValue, scope: Mapping[str, str], where: str = "template") -> JsonValue:
    """``substitute`` in every string of a JSON-like structure (values with quotes stay intact)."""
    if isinstance(obj, str):
        return substitute(obj, scope, where)
    if isinstance(obj, list):
        return [substitute_all(v, scope, where) for v in obj]
    if isinstance(obj, dict):
        return {k: substitute_all(v, scope, where) for k, v in obj.items()}
    return obj


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(expr):
            if not expr[pos:].strip():
                break
            m = _TOKEN_RE.match(expr, pos)
            if not m:
                raise self.error(f"invalid token at {pos} (hint: try wrapping the affected expression in quotes)")
            kind = next(k for k in ("num", "sq", "dq", "op", "word") if m.group(k) is not None)
            self.toks.append(("str" if kind in ("sq", "dq") else kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def error(self, why: str) -> ConfigError:
        return ConfigError(f"invalid 'when' expression {self.expr!r}: {why}", field="when", value=self.expr)

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) and self.toks[self.i][0] in ("op", "word") else None

    def take(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok in ops:
            self.i += 1
            return tok
        return None

    def parse(self) -> Value:
        value = self.or_()
        if self.i != len(self.toks):
            raise self.error(f"unexpected {self.toks[self.i][1]!r}")
        return value

    def or_(self) -> Value:
        left = self.and_()
        while self.take("||"):
            right = self.and_()
            left = self.bools(left, right, "||")
            left = bool(left[0] or left[1])
        return left

    def and_(self) -> Value:
        left = self.cmp()
        while self.take("&&"):
            right = self.cmp()
            pair = self.bools(left, right, "&&")
            left = bool(pair[0] and pair[1])
        return left

    def bools(self, a: Value, b: Value, op: str) -> tuple[bool, bool]:
        if not isinstance(a, bool) or not isinstance(b, bool):
            raise self.error(f"'{op}' needs booleans, got {a!r} and {b!r}")
        return a, b

    def cmp(self) -> Value:
        left = self.add()
        op = self.take("==", "!=", "<", "<=", ">", ">=", "in")
        if op is None:
            return left
        right = self.add()
        if op == "in":
            items = right if isinstance(right, tuple) else (right,)
            return left in items
        if op == "==":
            return type(left) is type(right) and left == right
        if op == "!=":
            return not (type(left) is type(right) and left == right)
        if isinstance(left, bool) or isinstance(right, bool) or type(left) is not type(right):
            raise self.error(f"cannot compare {left!r} {op} {right!r}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]  # type: ignore[operator]  # same type, checked above

    def add(self) -> Value:
        left = self.mul()
        while (op := self.take("+", "-")) is not None:
            right = self.mul()
            if op == "+" and isinstance(left, str) and isinstance(right, str):
                left = left + right
            else:
                left = (
                    self.num(left, op) + self.num(right, op) if op == "+" else self.num(left, op) - self.num(right, op)
                )
        return left

    def mul(self) -> Value:
        left = self.unary()
        while (op := self.take("*", "/", "%")) is not None:
            a, b = self.num(left, op), self.num(self.unary(), op)
            if op != "*" and b == 0:
                raise self.error("division by zero")
            left = a * b if op == "*" else (a / b if op == "/" else a % b)
        return left

    def num(self, v: Value, op: str) -> float:
        if isinstance(v, bool) or not isinstance(v, float):
            raise self.error(f"'{op}' needs numbers, got {v!r}")
        return v

    def unary(self) -> Value:
        if self.take("!"):
            v = self.unary()
            if not isinstance(v, bool):
                raise self.error(f"'!' needs a boolean, got {v!r}")
            return not v
        if self.take("-"):
            return -self.num(self.unary(), "-")
        return self.primary()

    def primary(self) -> Value:
        if self.i >= len(self.toks):
            raise self.error("unexpected end")
        kind, tok = self.toks[self.i]
        if kind == "op" and tok == "(":
            self.i += 1
            items = [self.or_()]
            while self.take(","):
                items.append(self.or_())
            if not self.take(")"):
                raise self.error("missing ')'")
            return tuple(items) if len(items) > 1 else items[0]
        self.i += 1
        if kind == "num":
            return float(tok)
        if kind == "str":
            return tok
        if kind == "word":
            return {"true": True, "false": False}.get(tok, tok)  # bare words are strings (Argo's rewrite)
        raise self.error(f"unexpected {tok!r}")


def evaluate_when(expr: str) -> bool:
    """True when a step with this (already substituted) ``when`` runs; an empty ``when`` always runs."""
    if not expr.strip():
        return True
    parser = _Parser(expr)
    result = parser.parse()
    if not isinstance(result, bool):
        raise parser.error(f"expected a boolean, got {result!r}")
    return result
