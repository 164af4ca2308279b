"""scan: note, while the reader walks a header, the element values the rules must look at.

The rules run in the plan, over the whole run, with the user's configuration; the inventory
cannot know that configuration, so it records facts instead: the raw bytes of every standard
text element (at any depth, sequences included) that a rule could care about. That is a value
that is not plain ASCII (the character set rules decode it), a value the value rules suspect
(:func:`migrate_fs.values.suspect`: a date that is not YYYYMMDD, an invalid UID, an over-long
string...) or a value of odd length. Clean values cost one check each and are not recorded, so a
clean archive's inventory stays small. Private elements (odd groups) are never recorded: their
bytes are copied as they are.

Both parsers feed the same :class:`Scanner` (the lean walker element by element, the pydicom
fallback from its dataset), so both record the same elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_fs.charsets import CHARSET_VRS, ESC
from migrate_fs.elements import (
    ITEM,
    ITEM_END,
    SEQUENCE_END,
    UNDEFINED,
    Malformed,
    Truncated,
    Window,
    decode_element_header,
)
from migrate_fs.transcode import dictionary_vr, tag_text
from migrate_fs.values import suspect

# VRs whose values are text: what the rules check.
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})


@dataclass
class Scanner:
    """Collects ``(tag path, VR, raw value)`` for the elements the rules must see.

    A tag path is ``(0010,0010)`` at the top level and ``(0008,1115)[0].(0008,1155)`` inside a
    sequence item: the form the ``changes`` column and the writer use.
    """

    elements: list[tuple[str, str, bytes]] = field(default_factory=list)

    def value(self, path: str, tag: int, vr: str, raw: bytes) -> None:
        """Record ``raw`` if a rule could care about it (``vr`` already resolved)."""
        if vr not in TEXT_VRS or tag >> 16 & 1:
            return
        if len(raw) & 1 or suspect(vr, raw) or (
                vr in CHARSET_VRS and (not raw.isascii() or ESC in raw)):
            self.elements.append((path + tag_text(tag), vr, raw))

    def element(self, win: Window, path: str, tag: int, vr: bytes | None, length: int,
                pos: int, implicit: bool, little: bool) -> int:
        """Look at one element whose value starts at ``pos``; return the offset after it."""
        name = vr.decode("latin-1") if vr is not None else dictionary_vr(tag)
        own = None if tag >> 16 & 1 else f"{path}{tag_text(tag)}"  # private: not recorded
        if length == UNDEFINED:
            return self.items(win, pos, None, implicit or name == "UN", little, own)
        end = pos + length
        if end > win.size:
            raise Truncated(f"element {tag_text(tag)} declares {length} bytes, the object "
                            f"holds {win.size - pos}")
        if name == "SQ":
            try:
                self.items(win, pos, end, implicit, little, own)
            except (Truncated, Malformed):
                pass  # odd item content inside a sequence whose length is known: stepped over
        elif own is not None and name in TEXT_VRS:
            self.value(path, tag, name, win.bytes(pos, length))
        return end

    def items(self, win: Window, pos: int, end: int | None, implicit: bool, little: bool,
              path: str | None) -> int:
        """Walk the items of a sequence from ``pos`` to ``end`` (or its delimiter); ``path``
        None means the items' values are not recorded (private sequences)."""
        index = 0
        while end is None or pos < end:
            tag, _, length, value = decode_element_header(win, pos, True, little)
            if tag == SEQUENCE_END:
                return value
            if tag != ITEM:
                raise Malformed(f"expected an item at byte {pos}, found {tag_text(tag)}")
            item_end = None if length == UNDEFINED else value + length
            item_path = f"{path}[{index}]." if path is not None else None
            pos = self._item(win, value, item_end if item_end is not None else end, implicit,
                             little, item_path)
            index += 1
        return pos

    def _item(self, win: Window, pos: int, end: int | None, implicit: bool, little: bool,
              path: str | None) -> int:
        while end is None or pos < end:
            tag, vr, length, value = decode_element_header(win, pos, implicit, little)
            if tag == ITEM_END:
                return value
            if path is None:  # inside a private sequence: step over, record nothing
                if length == UNDEFINED:
                    pos = self.items(win, value, None, implicit or vr == b"UN", little, None)
                else:
                    pos = value + length
                continue
            pos = self.element(win, path, tag, vr, length, value, implicit, little)
        return pos
