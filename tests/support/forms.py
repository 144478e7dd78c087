"""Reading an HTML form as a browser submits it: its action and its inputs' names and values."""

from __future__ import annotations

from html.parser import HTMLParser


class Form(HTMLParser):
    """The first form of a page fed to it: ``action`` and ``fields`` (input name -> value)."""

    def __init__(self, page: str = "") -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep the form's action and each input's value."""
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values["action"]
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")
