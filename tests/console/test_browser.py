"""The console in a real browser: Debian's chromium, driven by Playwright (no browser is
ever downloaded). Without chromium these tests skip, except in CI, where they fail.

The screenshots in docs/images/ (shown by the README) are taken here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import sample_images
from tests.api.test_console_api import audited
from tests.api.test_control_plane import MASTER, Gateway

CHROMIUM = os.environ.get("APERTURE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"
PHOTO = sample_images.jpeg(640, 480, color="teal")
TIMEOUT_MS = 15_000
# What sticks out on the right, outside the tables that scroll sideways on purpose.
WIDER_THAN_THE_SCREEN = """[...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > innerWidth + 1
    && !e.parentElement.closest('.scroll'))
  .map((e) => `${e.tagName}#${e.id}.${e.className}`).slice(0, 5)"""

playwright_api = pytest.importorskip("playwright.sync_api", reason="the test extra has playwright")
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        reason = (
            f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install "
            "chromium) or point APERTURE_CHROMIUM at one to run the console's browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with playwright_api.sync_playwright() as driver:
        # --no-sandbox: CI and this machine run as root, where Chromium's sandbox cannot start.
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, gateway: Gateway) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=gateway.admin)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # The pages keep to their Content-Security-Policy: no inline script or style slips in.
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    sign_in(tab)
    yield tab
    context.close()
    assert errors == [], errors  # no script failed and nothing was blocked on any page


def sign_in(tab: Any, key: str = "sk-master") -> None:
    tab.goto("/console")
    expect(tab).to_have_url(re.compile(r"/console/signin$"))
    tab.get_by_label("Admin key").fill(key)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab).to_have_url(re.compile(r"/console/overview$"))


def chat(gateway: Gateway, model: str = "small-images", text: str = "What is this?") -> str:
    body = {
        "model": model,
        "max_tokens": 50,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {
                        "type": "image_url",
                        "image_url": {"url": sample_images.data_uri(PHOTO, "image/jpeg")},
                    },
                ],
            }
        ],
    }
    answer = httpx.post(
        f"{gateway.public}/v1/chat/completions", json=body, headers=MASTER, timeout=30
    )
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    audited(gateway, request_id)  # written in batches, just after the answer
    return request_id


def test_sign_in_and_out(browser: Any, gateway: Gateway) -> None:
    context = browser.new_context(base_url=gateway.admin)
    tab = context.new_page()
    tab.goto("/console/keys")
    expect(tab).to_have_url(re.compile(r"/console/signin$"))
    tab.get_by_label("Admin key").fill("wrong")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("alert")).to_contain_text("not the master key")
    expect(tab.get_by_label("Admin key")).to_have_attribute("aria-invalid", "true")
    sign_in(tab)
    expect(tab.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    [cookie] = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "sk-master" not in tab.url and "sk-master" not in cookie["value"]
    tab.get_by_role("button", name="Sign out").click()
    expect(tab).to_have_url(re.compile(r"/console/signin$"))
    tab.goto("/console/overview")
    expect(tab).to_have_url(re.compile(r"/console/signin$"))
    context.close()


def test_the_overview_moves_after_requests(page: Any, gateway: Gateway) -> None:
    total = page.get_by_test_id("requests-total")
    expect(total).not_to_have_text("–")
    before = int(total.inner_text().replace(",", ""))
    images_before = page.get_by_test_id("images").inner_text()
    chat(gateway)
    chat(gateway)
    expect(total).to_have_text(str(before + 2))
    expect(page.get_by_test_id("images")).not_to_have_text(images_before)
    expect(page.locator("#breakers")).to_contain_text("recorded-small/emulator-vision")
    expect(page.locator("#breakers")).to_contain_text("closed")


def test_find_a_request_and_open_its_detail(page: Any, gateway: Gateway) -> None:
    request_id = chat(gateway, text="Which colour is this square?")
    page.get_by_role("link", name="Requests").click()
    page.get_by_label("Model").fill("small-images")
    page.get_by_label("Status").fill("200")
    page.get_by_role("button", name="Search").click()
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(row).to_be_visible()
    row.focus()
    page.keyboard.press("Enter")  # rows open from the keyboard too
    detail = page.locator("#detail")
    expect(detail.get_by_test_id("detail-request-id")).to_have_text(request_id)
    expect(detail).to_contain_text("640×480")
    expect(detail).to_contain_text("image/jpeg")
    expect(detail.get_by_test_id("detail-changes")).to_contain_text("downscaled")
    expect(detail).to_contain_text("recorded-small/emulator-vision")
    expect(detail).to_contain_text("Which colour is this square?")
    assert "base64" not in detail.inner_text()
    expect(page).to_have_url(re.compile(rf"id={request_id}"))
    detail.evaluate("node => node.blur()")  # the picture without the focus ring
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-request.png"), full_page=True)


def test_create_and_revoke_a_key(page: Any, gateway: Gateway) -> None:
    page.goto("/console/keys")
    page.get_by_label("Name", exact=True).fill("browser-key")
    page.get_by_label("Tenant", exact=True).fill("acme")
    page.get_by_label("Requests per minute").fill("many")
    page.get_by_role("button", name="Create key").click()
    rpm = page.get_by_label("Requests per minute")
    expect(rpm).to_have_attribute("aria-invalid", "true")  # the admin API's message, there
    expect(page.locator(".field-error")).to_contain_text("int")
    rpm.fill("60")
    page.get_by_label("Budget (USD)").fill("5")
    page.get_by_label("Expires").fill("2099-01-01T12:00")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("secret")
    expect(secret).to_have_text(re.compile(r"^ap_"))
    key = secret.inner_text()
    assert chat_with(gateway, key) == 200
    row = page.locator("tr", has_text="browser-key")
    expect(row).to_contain_text("acme")
    expect(row).to_contain_text("60 / ∞")
    expect(row).to_contain_text("of $5.00")
    expect(row).to_contain_text("active until")
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke browser-key").click()
    expect(row).to_contain_text("revoked")
    assert chat_with(gateway, key) == 401
    page.reload()
    expect(page.get_by_test_id("secret")).to_be_hidden()  # shown once, never again


def chat_with(gateway: Gateway, key: str, model: str = "demo-vision") -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.post(
        f"{gateway.public}/v1/chat/completions", json=body, headers=headers, timeout=30
    )
    return answer.status_code


def test_edit_a_route_with_the_admin_apis_errors_at_the_field(page: Any, gateway: Gateway) -> None:
    route = {
        "id": "browser-route",
        "model_pattern": "browser-*",
        "providers": [{"provider": "emu", "model": "emulator-vision"}],
    }
    assert gateway.admin_call("POST", "/v1/admin/routes", json=route).status_code == 201
    page.goto("/console/models")
    expect(page.locator("#catalog")).to_contain_text("demo-vision")
    page.get_by_role("button", name="Edit route browser-route").click()
    page.get_by_label("Model pattern").fill("browser-vision")
    page.get_by_label("Provider", exact=True).fill("nowhere")
    page.get_by_role("button", name="Save route").click()
    provider = page.get_by_label("Provider", exact=True)
    expect(provider).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("Unknown provider 'nowhere'")
    provider.fill("recorded")
    page.get_by_role("button", name="Save route").click()
    expect(page.locator('tr[data-route-id="browser-route"]')).to_contain_text("browser-vision")
    stored = gateway.admin_call("GET", "/v1/admin/routes/browser-route").json()
    assert stored["model_pattern"] == "browser-vision"
    assert stored["providers"][0]["provider"] == "recorded"


def test_add_a_model_live(page: Any, gateway: Gateway) -> None:
    page.goto("/console/models")
    definition = page.get_by_label("Model definition")
    model = {"name": "browser-model", "provider": "nowhere", "upstream_model": "emulator-vision"}
    definition.fill(json.dumps(model))
    page.get_by_role("button", name="Save model").click()
    expect(page.locator("#model-error")).to_contain_text("provider: Unknown provider 'nowhere'")
    expect(definition).to_have_attribute("aria-invalid", "true")
    definition.fill(json.dumps({**model, "provider": "emu", "capabilities": ["vision"]}))
    page.get_by_role("button", name="Save model").click()
    expect(page.locator("#catalog")).to_contain_text("browser-model")
    assert chat_with(gateway, "sk-master", "browser-model") == 200


def test_the_playground_with_an_image_end_to_end(page: Any, gateway: Gateway) -> None:
    page.goto("/console/playground")
    # From the keyboard: the drop zone opens the file chooser.
    page.on(
        "filechooser",
        lambda chooser: chooser.set_files(
            files=[{"name": "square.jpg", "mimeType": "image/jpeg", "buffer": PHOTO}]
        ),
    )
    page.locator("#drop").press("Enter")
    expect(page.get_by_role("img", name="square.jpg")).to_be_visible()
    page.get_by_label("Model or route").fill("small-images")
    page.get_by_label("Dialect").select_option("chat")
    expect(page.get_by_label("Stream the answer")).to_be_checked()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer-text")).to_contain_text("Saw 1 image")
    trace = page.locator("#trace")
    expect(trace.get_by_test_id("changes")).to_contain_text("downscaled")
    expect(trace.get_by_test_id("attempts")).to_contain_text("recorded-small/emulator-vision")
    expect(trace.get_by_test_id("images")).to_contain_text("640×480")
    upstream = trace.get_by_test_id("upstream")
    expect(upstream).to_contain_text("base64 characters elided")
    expect(upstream).to_contain_text('"model": "emulator-vision"')
    expect(trace).to_contain_text("Images, estimated")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-playground.png"), full_page=True)
    # The same request in the Anthropic dialect, not streamed.
    page.get_by_label("Dialect").select_option("messages")
    page.get_by_label("Stream the answer").uncheck()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer-text")).to_contain_text("Saw 1 image")


def test_pages_fit_a_phone(browser: Any, gateway: Gateway) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=gateway.admin)
    tab = context.new_page()
    sign_in(tab)
    for name in ("overview", "requests", "keys", "models", "playground"):
        tab.goto(f"/console/{name}")
        tab.wait_for_load_state("networkidle")
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = tab.evaluate(WIDER_THAN_THE_SCREEN)
        assert overflow <= 0, (name, overflow, wide)
    context.close()
