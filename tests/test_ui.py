"""The whole pipeline from the Dagster UI: a real `dagster-webserver` (and the daemon that runs backfills) on
127.0.0.1 over a temporary SQLite instance and a small demo lake, driven by headless Debian Chromium through Selenium.

The test opens the global asset lineage, expands every group and checks that every group and asset of the code
location's Definitions is drawn; then it clicks "Materialize all", picks all partitions of `sources` and launches the
backfill, and waits (GraphQL at /graphql) until the backfill and each of its runs succeed and every asset is
materialised. Screenshots (and the servers' logs) go to `$SIFT_TEST_ARTIFACTS/ui/` or `tests/artifacts/ui/`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_driver import (
    CHROMEDRIVER,
    CHROMIUM,
    INSTANCE_YAML,
    Server,
    artifacts_dir,
    chrome,
    dagster_servers,
    shown_as,
)

pytestmark = pytest.mark.slow

# Demo documents per source: enough for every stage to have work, small enough for a CI machine.
MAX_PER_SOURCE = 120
# The [sample] stage config for a pool this small (the default pilot of 50 rows per source needs more), through
# the stage's environment variables, which the daemon's runs inherit; as tests/test_sample_assets.py runs it.
SAMPLE_ENV = {"SIFT_SAMPLE__BUDGET": "120", "SIFT_SAMPLE__PILOT": "10", "SIFT_SAMPLE__ROUNDS": "2"}
# The whole graph on the demo data, PASER's demo model pair trained on first use included (about 14 minutes on a
# busy 2-core machine).
RUN_TIMEOUT_S = 25 * 60


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[Server]:
    """The demo lake (its corpus in `incoming/`, its tables for containment in `tables/demo/`), the `sources`
    partitions registered, and the webserver and daemon running over a temporary instance."""
    import dagster as dg

    from sift.pipelines.demo_corpus import real_documents, write_demo_inputs, write_demo_tables
    from sift.pipelines.resources import SOURCES_PARTITIONS

    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    sources = sorted(write_demo_inputs(lake / "incoming", max_per_source=MAX_PER_SOURCE))
    # lake_tables is external (written by whoever owns the lake, before any run): the demo's derived tables, here
    # from the corpus documents (`sift demo` derives them from the ingested ones)
    write_demo_tables(real_documents(MAX_PER_SOURCE), lake / "tables" / "demo")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(SOURCES_PARTITIONS.name, sources)
    # The sensors are on by default and would ingest the sources and follow them beside the backfill: stopped
    # here, so the only runs are those launched from the UI.
    for sensor in ("incoming_files_sensor", "curation_automation_sensor"):
        subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "sensor", "stop", sensor, "-m",
             "sift.pipelines.definitions"],
            env=dict(os.environ, DAGSTER_HOME=str(home), SIFT_LAKE_ROOT=str(lake)), cwd=home, check=True,
            capture_output=True,
        )  # fmt: skip
    for stale in artifacts_dir().glob("*.png"):  # screenshots of an earlier run
        stale.unlink()
    with dagster_servers(home, lake, artifacts_dir(), SAMPLE_ENV) as server:
        yield server


@pytest.fixture
def browser() -> None:
    """In CI (CI=true) a missing browser, driver or Selenium fails the test; elsewhere it skips with the reason."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package (the dev extra)")
    if not missing:
        return
    reason = f"UI test needs {', '.join(missing)} (apt-get install chromium chromium-driver; .ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _expected_graph() -> tuple[dict[str, list[str]], list[str], list[str]]:
    """From the code location's Definitions: group -> its asset names, the materialisable assets, and the
    partitioned ones."""
    from sift.pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name or "default", []).append(key.to_user_string())
    materializable = sorted(k.to_user_string() for k in graph.materializable_asset_keys)
    partitioned = sorted(
        k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None
    )
    return groups, materializable, partitioned


def _wait(driver: Any, xpath: str, timeout: float = 120) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.element_to_be_clickable((By.XPATH, xpath)))


def _dismiss_onboarding(driver: Any) -> None:
    """The first visit to a fresh instance may open a "Join the Dagster community" dialog: skip it."""
    from selenium.webdriver.common.by import By

    time.sleep(2)
    for button in driver.find_elements(By.XPATH, '//button[normalize-space()="Skip"]'):
        if button.is_displayed():
            button.click()
            time.sleep(1)


def _expand_all_groups(driver: Any) -> None:
    """Open the graph's settings menu (the gear button under the zoom controls) and choose "Expand all groups"."""
    from selenium.webdriver.common.by import By

    gear = '//button[normalize-space()="" and .//*[@role="img" and @aria-label="settings"]]'
    _wait(driver, gear).click()
    item = '//*[normalize-space(text())="Expand all groups"]/ancestor::*[self::button or @role="menuitem"][1]'
    driver.find_element(By.XPATH, item).click()


def _backfill_status(server: Server, backfill_id: str) -> tuple[str, list[dict[str, Any]]]:
    data = server.graphql(
        """query ($id: String!, $tag: String!) {
          partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } }
          runsOrError(filter: {tags: [{key: "dagster/backfill", value: $tag}]}) {
            ... on Runs { results { runId status assetSelection { path } } }
          }
        }""",
        {"id": backfill_id, "tag": backfill_id},
    )
    backfill = data["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    return str(backfill["status"]), list(data["runsOrError"]["results"])


def test_ui_shows_every_stage_and_materialises_the_whole_graph(browser: None, demo_server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server = demo_server
    groups, materializable, partitioned = _expected_graph()
    shots = artifacts_dir()
    print(f"UI test screenshots and server logs: {shots}")
    # a window that holds the whole expanded graph: the graph draws only the nodes in view
    with chrome((2400, 2000)) as driver:
        # 1. The global asset lineage: every group, then (expanded) every asset of the Definitions.
        driver.get(f"{server.url}/asset-groups")
        launch = _wait(driver, '//button[starts-with(normalize-space(), "Materialize all")]')
        _dismiss_onboarding(driver)
        assert launch.text.strip().startswith(f"Materialize all ({len(materializable)})"), launch.text
        page = driver.find_element(By.TAG_NAME, "body").text.splitlines()
        assert set(groups) <= set(page), f"groups not drawn: {sorted(set(groups) - set(page))}"
        _expand_all_groups(driver)
        time.sleep(2)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # close the menu
        time.sleep(1)
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[class*="AssetNode_assetName"]')]
        expected = sorted(name for names in groups.values() for name in names)
        missing = [n for n in expected if not any(shown_as(n, label) for label in labels)]
        driver.save_screenshot(str(shots / "01_asset_graph.png"))
        assert not missing, f"assets not drawn in the graph: {missing} (labels: {labels})"

        # 2. Materialize all: the graph has partitioned assets, so the UI asks for partitions: all of them.
        launch = _wait(driver, '//button[starts-with(normalize-space(), "Materialize all")]')
        launch.click()
        _wait(driver, '//button[normalize-space()="All"]').click()
        sources = sorted(p.name.split(".")[0] for p in (server.lake / "incoming").iterdir())
        _wait(driver, f'//*[contains(normalize-space(), "{len(sources)} partitions")]', 30)
        driver.save_screenshot(str(shots / "02_launch_dialog.png"))
        _wait(driver, '//button[normalize-space()="Launch backfill"]').click()
        toast = _wait(driver, '//*[starts-with(normalize-space(text()), "Created backfill")]', 60)
        match = re.search(r"Created backfill (\w+)", toast.text)
        assert match, toast.text
        backfill_id = match.group(1)
        driver.save_screenshot(str(shots / "03_backfill_launched.png"))

        # 3. Wait for the backfill: every run succeeds, and it completes.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        status, runs = _backfill_status(server, backfill_id)
        while status in ("REQUESTED", "CANCELING", "FAILING") and time.monotonic() < deadline:
            time.sleep(5)
            status, runs = _backfill_status(server, backfill_id)
        driver.get(f"{server.url}/runs/b/{backfill_id}")
        time.sleep(5)
        driver.save_screenshot(str(shots / "04_backfill.png"))
        failed = [r for r in runs if r["status"] != "SUCCESS"]
        for run in (failed or runs)[:8]:  # the failed runs, else the runs (8 at most)
            driver.get(f"{server.url}/runs/{run['runId']}")
            time.sleep(5)
            driver.save_screenshot(str(shots / f"05_run_{run['runId'][:8]}.png"))
        assert status == "COMPLETED_SUCCESS" and runs and not failed, (
            f"backfill {backfill_id}: {status}; runs {[(r['runId'][:8], r['status']) for r in runs]}\n"
            + server.log_tails()
        )

    # 4. Every asset of the graph is materialised, each partitioned one for every source.
    import dagster as dg

    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        for name in materializable:
            key = dg.AssetKey.from_user_string(name)
            assert instance.get_latest_materialization_event(key) is not None, name
            if name in partitioned:
                assert set(instance.get_materialized_partitions(key)) == set(sources), name
