"""evaluation.html opened in a real browser (headless Chromium through its WebDriver): the
plots decode, the tables are there, and report text is shown as text, never run as markup.

Chromium and ChromeDriver come from the system (`make test` installs Debian's packages where
it can); RADREPORT_CHROMIUM and RADREPORT_CHROMEDRIVER name others.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from radreport.metrics import EvaluationSettings, evaluate_reports

# The flags a closed network and a root user need: no sandbox (root), and no background
# connections that the machine would refuse.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
HOSTILE = '<script>document.title = "ran"</script><img src=x onerror="document.title=\'ran\'">'

TRAIN = pd.DataFrame(
    {
        "study_id": ["t1", "t2"],
        "impression": ["No acute disease.", "Effusion."],
        "findings": ["The lungs are clear.", "Small right pleural effusion."],
    }
)
SAMPLES = pd.DataFrame(
    {
        "study_id": ["v1", "v2", "v3"],
        "impression": ["No acute disease.", HOSTILE, "Right effusion & <b>bold</b>."],
        "reference": [
            "The lungs are clear.",
            "Mild cardiomegaly.",
            "Small right pleural effusion.",
        ],
        "generated": ["The lungs are clear.", f"Heart normal. {HOSTILE}", "Clear lungs."],
    }
)


def _program(variable: str, name: str) -> str:
    found = os.environ.get(variable) or shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} not found: `make test` installs Debian's chromium and chromium-driver "
            f"where apt-get runs as root; elsewhere install them or set ${variable}"
        )
    return found


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = _program("RADREPORT_CHROMIUM", "chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    service = Service(executable_path=_program("RADREPORT_CHROMEDRIVER", "chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def opened_page(browser, tmp_path_factory):
    settings = EvaluationSettings(bootstrap_resamples=50, seed=0, n_examples=3)
    result = evaluate_reports(SAMPLES, TRAIN, settings, tmp_path_factory.mktemp("page"))
    browser.get(result.html_path.as_uri())
    return browser


def test_the_page_loads_with_its_title_and_every_plot_decoded(opened_page):
    assert opened_page.title == "Evaluation"
    images = opened_page.find_elements(By.TAG_NAME, "img")
    assert len(images) == 3
    # A PNG the browser cannot decode has no natural size.
    for image in images:
        width, height = opened_page.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image
        )
        assert width > 100 and height > 100, image.get_attribute("alt")


def test_report_text_is_shown_as_written_and_never_run(opened_page):
    # Neither the script nor the image's error handler ran; the only images are the plots.
    assert opened_page.title == "Evaluation"
    assert not opened_page.find_elements(By.CSS_SELECTOR, "td script, td img, td b")
    shown = opened_page.find_element(By.TAG_NAME, "body").text
    assert f"Heart normal. {HOSTILE}" in shown
    assert "Right effusion & <b>bold</b>." in shown


def test_the_tables_hold_the_model_the_baselines_and_every_example(opened_page):
    tables = opened_page.find_elements(By.TAG_NAME, "table")
    comparison = tables[0].text
    assert comparison.splitlines()[1].startswith("model ")
    assert "exact-impression lookup" in comparison
    findings = tables[1].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(findings) == 14
    # Worst and best three by sentence BLEU: each table shows all three studies.
    for examples in tables[2:]:
        ids = [
            row.find_element(By.TAG_NAME, "td").text
            for row in examples.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        assert sorted(ids) == ["v1", "v2", "v3"]
