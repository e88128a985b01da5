"""The modifiers: normalisation, PII placeholders and HTML to text return the repaired text."""

import pytest

from pretrain.clean.html import HtmlToText, is_html
from pretrain.clean.normalize import ControlChars, FixEncoding, UnicodeNFC, Whitespace
from pretrain.clean.pii import PiiPlaceholders
from pretrain.config.clean import HtmlConfig, PiiConfig, WhitespaceConfig
from pretrain.errors import ConfigError


def test_fix_encoding_repairs_mojibake_and_leaves_good_text():
    assert FixEncoding().modify("The cafÃ© is â€œopenâ€\x9d") == "The café is “open”"
    for text in ("plain ASCII", "déjà vu — “quoted”", "x = '&amp;'  # HTML entities stay"):
        assert FixEncoding().modify(text) == text


def test_unicode_nfc_composes():
    assert UnicodeNFC().modify("cafe\u0301") == "caf\u00e9"


def test_control_characters_go_but_tab_newline_and_cr_stay():
    assert ControlChars().modify("\ufeffa\x00b\x1b[0mc\x7f\x85d\te\nf\rg") == "ab[0mcd\te\nf\rg"


def test_whitespace():
    ws = Whitespace(WhitespaceConfig())
    text = "\n\ndef f():\r\n    return 1   \r\n\n\n\n\nx\u00a0=\u20091 \t\n\n"
    assert ws.modify(text) == "def f():\n    return 1\n\n\nx = 1"
    assert Whitespace(WhitespaceConfig(max_blank_lines=0)).modify("a\n\n\nb") == "a\nb"


@pytest.mark.parametrize("text, expected", [
    ("Mail barry@python.org, or a.b+c@mail.example.co.uk.", "Mail <EMAIL>, or <EMAIL>."),
    ("@property and a@b stay", "@property and a@b stay"),
    ("DNS at 8.8.8.8. Router 192.168.1.1, loopback 127.0.0.1.", "DNS at <IP_ADDRESS>. Router 192.168.1.1, loopback 127.0.0.1."),
    ("v1.2.3.4 and 1.2.3.4.5 and 300.1.1.1 stay", "v1.2.3.4 and 1.2.3.4.5 and 300.1.1.1 stay"),
    ("IPv6 2606:4700:4700::1111 but not 2001:db8::1 or ::1", "IPv6 <IP_ADDRESS> but not 2001:db8::1 or ::1"),
    ("x[::2], 12:30:45, std::vector stay", "x[::2], 12:30:45, std::vector stay"),
])
def test_pii_placeholders(text, expected):
    assert PiiPlaceholders(PiiConfig()).modify(text) == expected


def test_pii_settings():
    text = "me@python.org at 8.8.8.8 or 10.0.0.1"
    assert PiiPlaceholders(PiiConfig(email_placeholder=None)).modify(text) == \
        "me@python.org at <IP_ADDRESS> or 10.0.0.1"
    assert PiiPlaceholders(PiiConfig(ip_placeholder="[IP]", keep_non_public_ips=False)).modify(text) == \
        "<EMAIL> at [IP] or [IP]"


PAGE = """<!DOCTYPE html>
<html><head><title>Site</title><style>p { color: red }</style></head>
<body><nav><ul><li>Home<li>About</ul></nav><div role="banner">Sale!</div>
<main><h1>Title &amp; more</h1><p>First   paragraph
 with <b>bold</b> text.</p><pre>def f():
    return 1</pre><p>Second<br>line</p><script>var x = 1;</script></main>
<footer>(c) Someone</footer></body></html>"""


def test_html_to_text_keeps_content_and_drops_page_furniture():
    text = HtmlToText(HtmlConfig()).modify(PAGE)
    assert text == "Title & more\n\nFirst paragraph with bold text.\n\ndef f():\n    return 1\n\nSecond\nline"


def test_html_skip_elements_and_main_content_come_from_the_config():
    everything = HtmlToText(HtmlConfig(main_content=False, skip_elements=[])).modify(PAGE)
    assert "Home" in everything and "Sale!" in everything and "(c) Someone" in everything
    assert "var x" not in everything and "color: red" not in everything  # never text
    assert "Sale!" not in HtmlToText(HtmlConfig(main_content=False)).modify(PAGE)  # [role=banner]
    assert "Title" not in HtmlToText(HtmlConfig(skip_elements=["main h1"])).modify(PAGE)


def test_a_page_inside_one_form_keeps_its_text():
    """ASP.NET WebForms pages wrap the whole body in one <form>: dropping forms (what the
    hand-written extractor did) returned nothing for them."""
    page = ("<html><body><form id='f'><div><h1>Water report 2023</h1><p>Lead levels stayed "
            "below the action level in every district.</p></div></form></body></html>")
    assert "Lead levels stayed below the action level" in HtmlToText(HtmlConfig()).modify(page)


def test_an_unparsable_selector_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"clean.html.skip_elements"):
        HtmlToText(HtmlConfig(skip_elements=["div[["]))


def test_html_documents_are_recognised_by_id_or_by_how_they_start():
    assert is_html({"id": "x", "text": PAGE})
    assert is_html({"id": "page.html", "text": "<p>fragment</p>", "kind": "html"})
    assert not is_html({"id": "x", "text": "<p>fragment</p> in a Markdown file"})
    assert not is_html({"id": "notes.md", "text": "Some text about <html> tags"})
