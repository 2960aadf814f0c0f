"""schemathesis against the live platform's own ``/openapi.json``: every operation, a few
schema-valid and schema-invalid requests each, with a platform admin's and a tenant admin's
key. No 5xx, every error in OpenAI's shape, every answer as the document declares it.
bench/fuzz.py runs the same with many more examples."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.gateway.fuzzing import fuzz, live_platform, report
from tokenmill.gateway.openapi import document_bytes

EXAMPLES = 5  # per operation and mode: about 1,100 requests, under a minute on 2 cores
SEED = 0


def test_no_operation_answers_5xx_or_an_error_out_of_shape(tmp_path: Path) -> None:
    document = orjson.loads(document_bytes())
    operations = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    with live_platform(tmp_path) as platform:
        tallies = fuzz(platform, EXAMPLES, SEED)
    # schemathesis leaves out the operation it loaded the document from
    assert {t.operation for t in tallies} == operations - {"GET /openapi.json"}
    assert all(t.examples for t in tallies)  # one example exhausts an operation without inputs
    assert sum(t.examples for t in tallies) > len(tallies) * EXAMPLES
    failed = [t for t in tallies if t.failures]
    assert not failed, "\n" + report(failed)
