"""The SQL in a text answer: the last fenced ``sql`` block, else the last fenced block, else the
text from its first SELECT/WITH on.

>>> extract_sql("The query is:\\n```sql\\nSELECT 1\\n```")
'SELECT 1'
>>> extract_sql("I would run SELECT name FROM t;")
'SELECT name FROM t;'
>>> extract_sql("no idea")
'no idea'
"""

from __future__ import annotations

import re

_FENCE_SQL = re.compile(r"```\s*sql\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n(.*?)```", re.DOTALL)
_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)


def extract_sql(text: str) -> str:
    for pattern in (_FENCE_SQL, _FENCE):
        blocks = pattern.findall(text)
        if blocks:
            return blocks[-1].strip()
    m = _START.search(text)
    return text[m.start():].strip() if m else text.strip()
