"""Read admin pages the way a browser does: which fields a form would submit, which options a
select offers, what a help text says."""

import re
from html.parser import HTMLParser

from django.http import HttpResponse

SKIPPED_INPUT_TYPES = {"submit", "button", "image", "reset", "file"}


class _FormParser(HTMLParser):
    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.in_form = form_id is None
        self.fields: list[tuple[str, str]] = []
        self.selects: dict[str, list[tuple[str, str, bool]]] = {}
        self._select: str | None = None
        self._option: dict[str, str | None] | None = None
        self._option_text = ""
        self._textarea: str | None = None
        self._textarea_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "form" and self.form_id is not None:
            self.in_form = attr.get("id") == self.form_id
            return
        if not self.in_form:
            return
        name = attr.get("name") or ""
        if tag == "input" and name and "disabled" not in attr:
            kind = (attr.get("type") or "text").lower()
            if kind in SKIPPED_INPUT_TYPES:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in attr:
                    self.fields.append((name, attr.get("value") or "on"))
                return
            self.fields.append((name, attr.get("value") or ""))
        elif tag == "select" and name:
            self._select = name
            self.selects[name] = []
        elif tag == "option" and self._select is not None:
            self._option = attr
            self._option_text = ""
        elif tag == "textarea" and name:
            self._textarea = name
            self._textarea_text = ""

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option_text += data
        if self._textarea is not None:
            self._textarea_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.form_id is not None:
            self.in_form = False
        elif tag == "option" and self._option is not None and self._select is not None:
            text = self._option_text.strip()
            value = self._option.get("value")
            self.selects[self._select].append(
                (text if value is None else value, text, "selected" in self._option)
            )
            self._option = None
        elif tag == "select" and self._select is not None:
            options = self.selects[self._select]
            chosen = [value for value, _, selected in options if selected]
            if not chosen and options:
                chosen = [options[0][0]]
            self.fields.extend((self._select, value) for value in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # Browsers drop the one newline that follows <textarea>.
            text = self._textarea_text.removeprefix("\n")
            self.fields.append((self._textarea, text))
            self._textarea = None


def _parse(response: HttpResponse, form_id: str | None) -> _FormParser:
    parser = _FormParser(form_id)
    parser.feed(response.content.decode())
    parser.close()
    return parser


def form_data(response: HttpResponse, form_id: str) -> dict[str, list[str]]:
    """What the form would submit if the user pressed Save without touching anything.

    The inline formsets' hidden templates (``__prefix__``) are left out, as a browser's
    JavaScript never submits them.
    """
    parser = _parse(response, form_id)
    assert parser.fields, f"no form #{form_id} with fields in the page"
    data: dict[str, list[str]] = {}
    for name, value in parser.fields:
        if "__prefix__" not in name:
            data.setdefault(name, []).append(value)
    data["_save"] = ["Save"]
    return data


def select_options(response: HttpResponse, name: str) -> list[tuple[str, str]]:
    """The (value, label) pairs a select offers, the empty "---------" choice excluded."""
    selects = _parse(response, None).selects
    assert name in selects, f"no <select name={name!r}> in the page; found {sorted(selects)}"
    return [(value, label) for value, label, _ in selects[name] if value != ""]


def help_text(response: HttpResponse, field: str) -> str:
    """The help line under a field of the admin form."""
    match = re.search(
        rf'id="id_{re.escape(field)}_helptext">\s*<div>(.*?)</div>', response.content.decode(), re.S
    )
    assert match, f"no help text for {field!r}"
    return match.group(1).strip()
