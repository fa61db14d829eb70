"""The web chat page in a real headless Chromium (Debian's `chromium`, driven by Playwright): type a message, watch
the reply stream in with recommendation cards, dislike a movie, and check it is remembered and never suggested
again. `ECRS_SCREENSHOT=path.png` also saves a screenshot (benchmarks/results/web_chat.png is made this way)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from serving_fixtures import ThreadServer, pipeline_fixture  # noqa: F401  (fixtures)

from ecrs.serving.app import ServeSettings, create_app

CHROMIUM = os.environ.get("ECRS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium; CI installs it in .ci/run)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

# Without the background-networking flags Chromium keeps dialling Google on a machine with no network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

# Counts every change of a reply bubble's text: streamed pieces arrive as separate `token` events.
COUNT_UPDATES = """() => {
  window.replyUpdates = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (node && node.closest('[data-testid="reply"]')) window.replyUpdates++;
    }
  }).observe(document.getElementById("log"), {subtree: true, childList: true, characterData: true});
}"""


def _send(page, text: str, turn: int) -> None:
    page.get_by_label("Your message").fill(text)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'li.msg.bot[data-turn="{turn}"]', timeout=30_000)  # `done`: the turn is committed


def _cards(page, turn: int) -> list[tuple[int, str]]:
    cards = page.locator(f'li.msg.bot[data-turn="{turn}"] .card')
    return [(int(cards.nth(i).get_attribute("data-entity")), cards.nth(i).locator("h3").inner_text())
            for i in range(cards.count())]


def test_chat_page_streams_replies_and_remembers_a_dislike(pipeline, tmp_path):
    settings = ServeSettings(db_url=f"sqlite:///{tmp_path / 'sessions.db'}", rate_per_minute=0)
    with ThreadServer(create_app(lambda: pipeline, settings)) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            assert page.title().startswith("Movie chat")
            page.evaluate(COUNT_UPDATES)

            _send(page, "I loved Titanic, anything like it?", turn=0)
            reply = page.locator('[data-testid="reply"]').first.inner_text()
            first = _cards(page, 0)
            assert len(first) == pipeline.top_k and reply.strip()
            assert first[0][1].split(" (")[0] in reply  # the reply is about the first card
            assert page.evaluate("window.replyUpdates") >= 2, "the reply did not arrive in pieces"
            emotion = page.locator("li.msg.user .emotion").first
            assert emotion.inner_text().startswith("sensed: ")

            entity, title = first[0]
            dislike = page.locator(f'li.card[data-entity="{entity}"] button[data-value="disliked"]').first
            dislike.click()
            page.wait_for_function(
                "(e) => document.querySelector(`li.card[data-entity='${e}'] .note`).textContent.includes('won')",
                arg=entity)
            assert dislike.get_attribute("aria-pressed") == "true"

            _send(page, "Something else, maybe a comedy?", turn=1)
            second = _cards(page, 1)
            assert second and entity not in [e for e, _ in second] and title not in [t for _, t in second]

            sid = page.evaluate("localStorage.getItem('ecrs-session')")
            memory = httpx.get(f"{server.url}/sessions/{sid}").json()["memory"]
            assert entity in memory["disliked"]

            # A reload restores the conversation, the verdict included.
            page.reload()
            page.wait_for_selector('li.msg.bot .card')
            assert page.locator("li.msg.user").count() == 2
            restored = page.locator(f'li.card[data-entity="{entity}"] button[data-value="disliked"]').first
            assert restored.get_attribute("aria-pressed") == "true"

            # The memory panel lists the verdict and forgets it on request.
            chip = page.locator('[data-testid="memory"] li', has_text="disliked ")
            assert chip.count() == 1 and title.split(" (")[0] in chip.inner_text()
            chip.get_by_role("button").click()
            page.wait_for_function("() => ![...document.querySelectorAll('[data-testid=memory] li')]"
                                   ".some((li) => li.textContent.includes('disliked '))")
            assert entity not in httpx.get(f"{server.url}/sessions/{sid}").json()["memory"]["disliked"]
            assert not errors, errors

            if os.environ.get("ECRS_SCREENSHOT"):
                out = Path(os.environ["ECRS_SCREENSHOT"])
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
        finally:
            browser.close()
