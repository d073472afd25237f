"""The static rules engine: hand-written thresholds in ``rules.yaml``, scored like a model.

Conditions are parsed with Python's ``ast`` and only comparisons, and/or/not, arithmetic,
numbers and feature names are allowed, so a rules file can never run code. Every name must be
a feature of the catalogue: a typo fails when the rules are loaded, not silently at scoring.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ml.risk.config import RULES_PATH
from ml.risk.features import feature_names


class RulesError(ValueError):
    """A rules file is invalid (which rule and why)."""


_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    when: str
    points: float
    tree: ast.Expression

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """True where the rule fires (a missing value never fires a rule)."""
        out = _eval(self.tree.body, frame)
        return np.asarray(out, dtype=bool)


def _eval(node: ast.AST, frame: pd.DataFrame):
    if isinstance(node, ast.BoolOp):
        parts = [np.asarray(_eval(v, frame), dtype=bool) for v in node.values]
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = parts[0]
        for p in parts[1:]:
            out = fn(out, p)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~np.asarray(_eval(node.operand, frame), dtype=bool)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, frame)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, frame)
        out = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, frame)
            with np.errstate(invalid="ignore"):
                res = np.asarray(_COMPARE[type(op)](left, right), dtype=bool)
            out = res if out is None else out & res
            left = right
        return out
    if isinstance(node, ast.BinOp):
        return _ARITH[type(node.op)](_eval(node.left, frame), _eval(node.right, frame))
    if isinstance(node, ast.Name):
        return pd.to_numeric(frame[node.id], errors="coerce").to_numpy(dtype=float)
    if isinstance(node, ast.Constant):
        return node.value
    raise RulesError(f"unsupported expression {ast.dump(node)}")  # guarded by _check


_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
    ast.BinOp, ast.Name, ast.Load, ast.Constant, *_COMPARE, *_ARITH,
)  # fmt: skip


def _check(name: str, when: str, known: set[str]) -> ast.Expression:
    try:
        tree = ast.parse(when, mode="eval")
    except SyntaxError as exc:
        raise RulesError(f"rule {name!r}: cannot parse {when!r}: {exc.msg}") from exc
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise RulesError(f"rule {name!r}: {type(node).__name__} is not allowed in {when!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise RulesError(f"rule {name!r}: only numbers may be compared, got {node.value!r}")
        if isinstance(node, ast.Name) and node.id not in known:
            raise RulesError(f"rule {name!r}: {node.id!r} is not a feature (docs/risk_features.md)")
    return tree


@dataclass(frozen=True)
class RuleSet:
    hold_at: float
    rules: tuple[Rule, ...]

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        """Each order's points: the rules engine's score (higher = riskier)."""
        total = np.zeros(len(frame))
        for rule in self.rules:
            total += np.where(rule.evaluate(frame), rule.points, 0.0)
        return total

    def held(self, frame: pd.DataFrame) -> np.ndarray:
        return self.points(frame) >= self.hold_at

    def fired(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({r.name: r.evaluate(frame) for r in self.rules}, index=frame.index)


def load_rules(path: Path | None = None) -> RuleSet:
    path = path or RULES_PATH
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"cannot read rules {path}: {exc}") from exc
    known = set(feature_names())
    rules = []
    seen = set()
    for i, item in enumerate(raw.get("rules") or []):
        name = item.get("name") or f"rule_{i + 1}"
        if name in seen:
            raise RulesError(f"{path}: rule {name!r} is defined twice")
        seen.add(name)
        if "when" not in item:
            raise RulesError(f"{path}: rule {name!r} has no 'when' condition")
        tree = _check(name, str(item["when"]), known)
        rules.append(
            Rule(
                name,
                item.get("description", name),
                str(item["when"]),
                float(item.get("points", 1)),
                tree,
            )
        )
    if not rules:
        raise RulesError(f"{path}: no rules")
    return RuleSet(float(raw.get("hold_at", 1)), tuple(rules))
