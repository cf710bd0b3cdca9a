"""What each incident category is called, in English and Chinese: the built-in names of the
usual categories, and a command centre's own (`FIELDLINK_CATEGORY_NAMES`). Every screen
words a category from these. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

# the usual categories' Chinese names; in English a category reads as its code
BUILT_IN_CHINESE = {
    "urgent": "紧急",
    "hazmat": "危化",
    "help": "求助",
    "dispute": "纠纷",
    "report": "报案",
    "traffic": "交通",
    "search": "搜寻",
    "crowd": "人群疏导",
    "lost_person": "走失人员",
    "other": "其他",
}


def parse_names(raw: str) -> dict[str, tuple[str, str]]:
    """`fire=Fire/火警,flood=Flood/水灾` as {code: (English, Chinese)}; a ValueError names
    the entry that is not CODE=ENGLISH/CHINESE."""
    names = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        code, _, both = item.partition("=")
        english, _, chinese = both.partition("/")
        if not (code.strip() and english.strip() and chinese.strip()):
            raise ValueError(f"{item!r} is not CODE=ENGLISH/CHINESE")
        names[code.strip()] = (english.strip(), chinese.strip())
    return names


def category_names(
    categories: Iterable[str], own: dict[str, tuple[str, str]]
) -> dict[str, dict[str, str]]:
    """Each category's names by language: the command centre's own, else its code with
    spaces in English and the built-in Chinese name (or the code, for one the centre added
    and did not name)."""
    out = {}
    for code in categories:
        plain = code.replace("_", " ")
        english, chinese = own.get(code) or (plain, BUILT_IN_CHINESE.get(code, plain))
        out[code] = {"en": english, "zh": chinese}
    return out
