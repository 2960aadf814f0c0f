"""Tool calling on the Berkeley Function Calling Leaderboard's questions, through the engine.

    .venv/bin/pip install --no-deps bfcl-eval
    .venv/bin/python bench/tools.py [--per-category 24] [--out bench/results/tools.json]

The first questions of BFCL's ``simple_python``, ``multiple`` and ``parallel`` categories
(question and answer files bundled in the ``bfcl-eval`` wheel) go to one engine replica with
the bundled SmolLM2 as chat requests with ``tool_choice: "required"`` and every function
``strict`` (``parallel_tool_calls`` only for ``parallel``). Two shares per category:
``valid``: calls whose arguments parse and validate against the function's schema (the
grammar guarantees this: anything under 100% is a bug); ``right``: questions answered with
the expected functions and argument values (BFCL's possible answers; a model-quality figure,
reported only). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema

sys.path.insert(0, str(Path(__file__).parent))

from engine import Engine

from tokenmill.catalog.bundled import bundled_model

CATEGORIES = {"simple_python": False, "multiple": False, "parallel": True}  # name: parallel
TYPES = {"dict": "object", "float": "number", "tuple": "array", "list": "array", "any": None}


def questions(category: str, limit: int) -> list[tuple[dict[str, Any], list[Any]]]:
    data = importlib.resources.files("bfcl_eval") / "data"
    name = f"BFCL_v4_{category}.json"
    asked = [json.loads(line) for line in (data / name).read_text().splitlines() if line]
    answers = {
        entry["id"]: entry["ground_truth"]
        for entry in map(json.loads, (data / "possible_answer" / name).read_text().splitlines())
    }
    return [(q, answers[q["id"]]) for q in asked[:limit]]


def schema(node: Any) -> Any:
    """BFCL's Python-flavoured schema types as JSON Schema's."""
    if isinstance(node, list):
        return [schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: schema(value) for key, value in node.items() if key != "optional"}
    kind = out.get("type")
    if isinstance(kind, str) and kind in TYPES:
        if TYPES[kind] is None:
            del out["type"]
        else:
            out["type"] = TYPES[kind]
    return out


def tools_of(question: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {
            "name": f["name"].replace(".", "_"), "description": f.get("description", ""),
            "parameters": schema(f["parameters"]), "strict": True}}
        for f in question["function"]
    ]  # fmt: skip


def right(calls: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    """The expected functions (in any order) with every argument among its possible values."""
    if len(calls) != len(expected):
        return False
    remaining = list(expected)
    for call in calls:
        for i, want in enumerate(remaining):
            [(name, values)] = want.items()
            if name.replace(".", "_") == call["name"] and _arguments_match(call["args"], values):
                del remaining[i]
                break
        else:
            return False
    return True


def _arguments_match(args: dict[str, Any], values: dict[str, list[Any]]) -> bool:
    if set(args) - set(values):
        return False
    for key, allowed in values.items():
        if key not in args:
            if "" not in allowed:
                return False
        elif args[key] not in allowed and not (
            isinstance(args[key], str) and args[key].lower() in [str(a).lower() for a in allowed]
        ):
            return False
    return True


def ask(http: httpx.Client, question: dict[str, Any], parallel: bool) -> dict[str, Any]:
    tools = tools_of(question)
    body = {"model": "bench", "messages": question["question"][0], "tools": tools,
            "tool_choice": "required", "parallel_tool_calls": parallel,
            "max_tokens": 320 if parallel else 160, "temperature": 0}  # fmt: skip
    started = time.monotonic()
    reply = http.post("/v1/chat/completions", json=body).json()
    seconds = time.monotonic() - started
    choice = reply["choices"][0]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    calls, valid = [], 0
    for call in choice["message"].get("tool_calls") or []:
        try:
            args = json.loads(call["function"]["arguments"])
            jsonschema.validate(args, schemas[call["function"]["name"]])
        except (ValueError, jsonschema.ValidationError):
            args = None
        else:
            valid += 1
        calls.append({"name": call["function"]["name"], "args": args})
    return {"id": question["id"], "finish_reason": choice["finish_reason"], "calls": calls,
            "valid": valid, "seconds": round(seconds, 2),
            "completion_tokens": reply["usage"]["completion_tokens"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/tools.json"))
    parser.add_argument("--per-category", type=int, default=24)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    model = str(bundled_model("smollm2-135m-instruct").path())
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-tools-engine.log"
    command = [sys.executable, "-m", "tokenmill.engine", "--model", model, "--served-name",
               "bench", "--threads", str(args.threads), "--log-level", "warning"]  # fmt: skip
    report: dict[str, Any] = {"benchmark": "tools", "model": model, "categories": {}}
    print(f"{'category':<14}{'questions':>10}{'calls':>7}{'valid':>8}{'right':>8}{'s/q':>7}")
    with Engine(command, log) as url, httpx.Client(base_url=url, timeout=600) as http:
        for category, parallel in CATEGORIES.items():
            results = []
            for question, expected in questions(category, args.per_category):
                result = ask(http, question, parallel)
                result["right"] = result["valid"] == len(result["calls"]) and right(
                    result["calls"], expected
                )
                results.append(result)
            calls = sum(len(r["calls"]) for r in results)
            finished = [r for r in results if r["finish_reason"] == "tool_calls"]
            summary = {
                "questions": len(results),
                "calls": calls,
                "valid_share": sum(r["valid"] for r in finished)
                / max(1, sum(len(r["calls"]) for r in finished)),
                "right_share": sum(r["right"] for r in results) / max(1, len(results)),
                "cut_off": len(results) - len(finished),
                "seconds_per_question": sum(r["seconds"] for r in results) / max(1, len(results)),
                "results": results,
            }
            report["categories"][category] = summary
            print(
                f"{category:<14}{len(results):>10}{calls:>7}{summary['valid_share']:>8.0%}"
                f"{summary['right_share']:>8.0%}{summary['seconds_per_question']:>7.1f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
