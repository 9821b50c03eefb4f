"""Argo's expression tags, ``{{=...}}`` (expr-lang), in the subset mnistkit's manifests use.

As in argo-workflows ``util/template/expression_template.go``: the template is JSON text, so the expression is
JSON-unescaped first; parameters come from the same scope as ``{{...}}`` (``workflow.parameters.tf-worker`` is
read as ``workflow.parameters["tf-worker"]`` or ``workflow.parameters.x``); ``asInt``/``asFloat`` (aliases of
expr's ``int``/``float``) and ``string`` convert; ``+ - * /`` on numbers (``+`` also joins strings); the result
is JSON-marshalled and, for a string, inserted without its quotes. Anything else is a clear error naming the
expression, never a silent wrong value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from mnistkit.errors import ConfigError

__all__ = ["evaluate_tag"]

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<op>[-+*/()\[\]])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.-]*))"
)
_FUNCS = {"asInt": "int", "int": "int", "asFloat": "float", "float": "float", "string": "string"}

Value = int | float | str


class _Tag:
    def __init__(self, expr: str, scope: Mapping[str, str], where: str) -> None:
        self.expr, self.scope, self.where = expr, scope, where
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while expr[pos:].strip():
            m = _TOKEN_RE.match(expr, pos)
            if not m or m.end() == pos:
                raise self.error(f"unexpected character at {pos}")
            kind = next(k for k in ("num", "sq", "dq", "op", "word") if m.group(k) is not None)
            self.toks.append(("str" if kind in ("sq", "dq") else kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def error(self, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: expression {{{{={self.expr}}}}}: {why}", field="template", value=self.expr)

    def take(self, op: str) -> bool:
        if self.i < len(self.toks) and self.toks[self.i] == ("op", op):
            self.i += 1
            return True
        return False

    def parse(self) -> Value:
        value = self.add()
        if self.i != len(self.toks):
            raise self.error(f"unexpected {self.toks[self.i][1]!r}")
        return value

    def add(self) -> Value:
        left = self.mul()
        while (op := "+" if self.take("+") else ("-" if self.take("-") else None)) is not None:
            right = self.mul()
            if op == "+" and isinstance(left, str) and isinstance(right, str):
                left = left + right
            else:
                a, b = self.num(left, op), self.num(right, op)
                left = a + b if op == "+" else a - b
        return left

    def mul(self) -> Value:
        left = self.primary()
        while (op := "*" if self.take("*") else ("/" if self.take("/") else None)) is not None:
            a, b = self.num(left, op), self.num(self.primary(), op)
            if op == "/" and b == 0:
                raise self.error("division by zero")
            left = a * b if op == "*" else a / b
        return left

    def num(self, v: Value, op: str) -> int | float:
        if isinstance(v, str):
            raise self.error(f"'{op}' needs numbers, got the string {v!r} (parameters are strings: use asInt)")
        return v

    def primary(self) -> Value:
        if self.i >= len(self.toks):
            raise self.error("unexpected end")
        kind, tok = self.toks[self.i]
        self.i += 1
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if kind == "str":
            return tok
        if kind == "op" and tok == "(":
            value = self.add()
            if not self.take(")"):
                raise self.error("missing ')'")
            return value
        if kind == "word" and tok in _FUNCS and self.take("("):
            arg = self.add()
            if not self.take(")"):
                raise self.error(f"{tok}(...) takes one argument")
            return self.convert(_FUNCS[tok], arg)
        if kind == "word":
            path = tok
            while self.take("["):
                if self.i >= len(self.toks) or self.toks[self.i][0] != "str":
                    raise self.error("only string keys are supported in [...]")
                path += "." + self.toks[self.i][1]
                self.i += 1
                if not self.take("]"):
                    raise self.error("missing ']'")
            if path not in self.scope:
                raise self.error(f"{path} is missing")
            return str(self.scope[path])
        raise self.error(f"unexpected {tok!r}")

    def convert(self, to: str, v: Value) -> Value:
        if to == "string":
            return v if isinstance(v, str) else json.dumps(v)
        try:
            return int(v) if to == "int" else float(v)
        except ValueError:
            raise self.error(f"{to}({v!r}) is not a number") from None


def evaluate_tag(expr: str, scope: Mapping[str, str], where: str = "template") -> str:
    """The text Argo puts in place of ``{{=expr}}``."""
    try:
        text = json.loads(f'"{expr}"')  # undo the template's JSON escapes, as Argo does
    except ValueError:
        text = expr
    value = _Tag(text, scope, where).parse()
    out = json.dumps(value)
    return out[1:-1] if isinstance(value, str) else out
