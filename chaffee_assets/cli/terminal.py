"""Text that came from outside (titles, captions, file names, error messages) made safe to print.

A title or a caption file can hold an escape sequence: printed raw, it could recolour, retitle or
clear the user's terminal, or hide the lines around it. Control characters are dropped before any
such text reaches the terminal; line breaks become spaces so one record stays on one line.
"""

from __future__ import annotations

import re

# C0 controls (tab and line breaks included: one record, one line), DEL, and C1 (0x9b is CSI).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def printable(text: object) -> str:
    """`text` as one line without control characters; runs of them become one space where they
    separated words."""
    return _CONTROL.sub(lambda m: " " if m.group().strip("\t\r\n\x0b\x0c") == "" else "", str(text)).strip()
