"""The console's fine-tuning job page against a live ``tokenmill serve``: a succeeded job
offers to merge its fine-tune into a standalone model; the button merges it (the admin API's
``POST /admin/v1/models/{ft}/merge``) and names the new model, which the tenant's admin sees in
the library. No training run: the fine-tune is written to the library as publishing leaves one
(a random adapter), its job as a succeeded one. Its base is a tiny llama of the tenant's own
(``write_tiny_llama``): the page's story does not depend on the base's size, and a merge of the
bundled model takes tens of seconds here (``test_merge`` checks that merge, and the CLI's test
runs it)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, WAIT_MS, _open
from tests.e2e.test_console import browser as browser  # the fixture, shared
from tests.tuning.test_standalone import add_fine_tune, write_tiny_llama
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.tuning.objects import FineTuningJobInfo, new_job_id
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.status import JobStatus

MERGE_MS = 180_000  # a merge of the tiny base takes a moment; a busy machine, longer
BASE_ID = "tiny-merge-console"


def _private_base(platform: Platform, tenant_id: str, folder: Path) -> Path:
    """The tiny llama in the library as ``BASE_ID``, a chat model only ``tenant_id`` sees."""
    artifact = write_tiny_llama(folder / "tiny.gguf")
    ModelRepository(platform.db, SystemClock()).register(
        BASE_ID, task="chat", artifact=str(artifact), context_tokens=2048, owner_tenant_id=tenant_id
    )
    return artifact


def _succeeded_job(platform: Platform, tenant_id: str, fine_tune: str) -> str:
    clock = SystemClock()
    key = KeyRepository(platform.db, clock).list(tenant_id)[0]
    job = FineTuningJobInfo(
        id=new_job_id(),
        tenant_id=tenant_id,
        key_id=key.id,
        model=BASE_ID,
        base_served_name=f"{BASE_ID}@1",
        training_file_id="file-merge-console",
        validation_file_id=None,
        suffix="pirate",
        seed=1,
        hyperparameters={"n_epochs": 1},
        status=JobStatus.SUCCEEDED,
        created_at=clock.utcnow(),
        fine_tuned_model=fine_tune,
        trained_tokens=1234,
    )
    return JobRepository(platform.db, clock).add(job).id


def test_a_succeeded_jobs_page_merges_its_fine_tune(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "merge-console"}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "merge-console-admin", "role": "tenant_admin"},
        ).json()
    key = str(made["secret"])
    job = f"ftjob-{secrets.token_hex(12)}"
    base = _private_base(platform, tenant["id"], tmp_path)
    adapters = platform.data_dir / "adapters"
    fine_tune = add_fine_tune(platform.db, tenant["id"], adapters, BASE_ID, job, base)
    job_id = _succeeded_job(platform, tenant["id"], fine_tune)
    page = _open(browser, platform, key)

    page.evaluate(f"location.hash = '#/fine-tuning/{job_id}'")
    button = page.locator("#ft-actions #ft-merge")
    expect(button).to_be_enabled(timeout=WAIT_MS)
    started = time.monotonic()
    button.click()
    merged = page.locator("#ft-merged")
    expect(merged).to_contain_text(f"{fine_tune}:merged", timeout=MERGE_MS)
    assert "F16" in merged.inner_text()
    page.screenshot(path=str(ARTIFACTS / "fine-tuning-merged.png"), full_page=True)
    assert time.monotonic() - started < MERGE_MS / 1000

    with platform.http(key) as http:
        model = http.get(f"/admin/v1/models/{fine_tune}:merged").json()
    assert model["engine"] == "tokenmill" and model["owner"] == tenant["id"]
    assert model["card"]["fine_tuning"]["merged_from"]["fine_tune"] == fine_tune
    assert page.console_errors == [], page.console_errors
