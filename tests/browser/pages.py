"""Page objects for the public portal, so that tests read as the citizen's steps."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Page


@dataclass
class PortalPages:
    page: Page
    base: str
    portal: str = "demo"

    def url(self, lang: str, path: str = "") -> str:
        return f"{self.base}/{self.portal}/{lang}/{path}"

    def submit(self) -> str:
        """Press the form's button; return the HTML the server sent back."""
        with self.page.expect_response(lambda r: r.request.resource_type == "document") as info:
            self.page.click("main form button[type=submit]")
        self.page.wait_for_load_state()
        return info.value.text()

    def open(self, lang: str, path: str = "") -> str:
        response = self.page.goto(self.url(lang, path))
        assert response is not None
        return response.text()

    def fill_report(self, urls: str, danger: bool = False, content_type: str = "images",
                    description: str = "", email: str = "") -> None:
        self.page.fill("#urls", urls)
        self.page.select_option("#content_type", content_type)
        self.page.select_option("#where_found", "website")
        if danger:
            self.page.check("#child_in_danger")
        if description:
            self.page.fill("#description", description)
        if email:
            self.page.fill("#contact_email", email)

    def receipt(self) -> str:
        return (self.page.text_content("#receipt") or "").strip()

    def check_status(self, receipt: str) -> str:
        self.page.fill("#receipt", receipt)
        return self.submit()

    def shown_status(self) -> str | None:
        element = self.page.query_selector("#report-status")
        return element.get_attribute("data-status") if element else None
