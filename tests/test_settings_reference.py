"""README.md's settings reference lists every MEETBOT_* variable with its default and meaning, as the model has them."""

from __future__ import annotations

import re

from meetbot import settings_reference
from meetbot.settings import Settings


def _reference_rows(readme: str) -> dict[str, tuple[str, str]]:
    section = readme.split(settings_reference.START_MARKER, 1)[1].split(settings_reference.END_MARKER, 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.match(r"^\| `(MEETBOT_[A-Z0-9_]+)` \| (.*?) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_readme_lists_every_setting_with_a_default_and_a_meaning() -> None:
    readme = settings_reference.README_PATH.read_text()
    assert settings_reference.START_MARKER in readme, "README.md has no generated settings reference"
    rows = _reference_rows(readme)
    expected = {f"MEETBOT_{name.upper()}" for name in Settings.model_fields}
    assert set(rows) == expected, "run python -m meetbot.settings_reference --write"
    assert rows["MEETBOT_BOTS_PER_PROCESS"][0] == f"`{Settings.model_fields['bots_per_process'].default}`"
    assert rows["MEETBOT_REGISTRATION"][0] == "`open`"
    undocumented = sorted(name for name, (_default, meaning) in rows.items() if not meaning.strip())
    assert not undocumented, f"settings without a meaning (add a comment in meetbot/settings.py): {undocumented}"
    assert settings_reference.readme_with_reference(readme) == readme, (
        "run python -m meetbot.settings_reference --write"
    )


def test_the_generator_notices_drift_and_repairs_it() -> None:
    readme = settings_reference.README_PATH.read_text()
    head, tail = readme.split(settings_reference.START_MARKER, 1)  # a renamed setting left behind in the table
    tail = tail.replace("| `MEETBOT_BOTS_PER_PROCESS` |", "| `MEETBOT_BOTS_PER_PROCESS_OLD` |", 1)
    drifted = head + settings_reference.START_MARKER + tail
    assert drifted != readme
    assert "MEETBOT_BOTS_PER_PROCESS_OLD" in _reference_rows(drifted)
    repaired = settings_reference.readme_with_reference(drifted)
    assert repaired == readme
    assert settings_reference.main(["--check"]) == 0
