"""The clean stage: rules by document kind (prose, code), each a small unit with a name.

- ``runner.py``: ``clean()``, documents through their kind's rules in parallel processes.
- ``registry.py``: rule names -> factories (what ``clean.filters`` may list), keep/drop verdicts.
- ``report.py``: counts by rule and reason, samples of dropped documents, the score plot.
- Rule families: ``normalize.py`` (encoding, Unicode, whitespace), ``html.py`` (HTML to text),
  ``pii.py`` (e-mail and IP placeholders), ``course.py`` (the course's paragraph and language
  filters), ``gopher.py`` (Gopher quality and repetition), ``web.py`` (C4 and FineWeb),
  ``code.py`` (Codex / The Stack file rules), ``words.py`` (spaCy-compatible words, character
  classes).
"""
