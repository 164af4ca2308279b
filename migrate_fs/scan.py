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

from collections.abc import Callable
from dataclasses import dataclass, field

from migrate_fs.elements import (
    CHARSET_TAG,
    ITEM,
    ITEM_END,
    MAX_NESTING,
    SEQUENCE_END,
    UNDEFINED,
    Malformed,
    NestingTooDeep,
    Truncated,
    Window,
    check_repeat,
    decode_element_header,
    plain_run,
)
from migrate_fs.transcode import dictionary_vr, tag_text
from migrate_fs.values import CLEAN, CLEAN_BYTES

# VRs whose values are text: what the rules check (each with its pattern of clean values).
TEXT_VRS = frozenset(CLEAN)
_NOTHING: frozenset[int] = frozenset()  # no raw values kept from inside sequences
_NO_CHECKS: dict[bytes, Callable[[bytes], object]] = {}  # a private sequence: nothing recorded


@dataclass
class Scanner:
    """Collects ``(tag path, VR, raw value)`` for the elements the rules must see.

    A tag path is ``(0010,0010)`` at the top level and ``(0008,1115)[0].(0008,1155)`` inside a
    sequence item: the form the ``changes`` column and the writer use.
    """

    elements: list[tuple[str, str, bytes]] = field(default_factory=list)
    # Tag paths of item elements that repeat the element before them byte for byte.
    repeated: list[str] = field(default_factory=list)

    # The walker's table: explicit VR bytes -> the fullmatch of clean values, for the elements
    # it checks inline (:func:`migrate_fs.elements.walk_dataset` calls :meth:`record`).
    checks = CLEAN_BYTES

    def value(self, path: str, tag: int, vr: str, raw: bytes) -> None:
        """Record ``raw`` if a rule could care about it (``vr`` already resolved): a value of
        odd length, or one its VR's pattern of clean values does not match (which a value of a
        charset VR that is not ASCII, or holds ESC, never does)."""
        clean = CLEAN.get(vr)
        if clean is None or tag >> 16 & 1:
            return
        if len(raw) & 1 or clean(raw) is None:
            self.elements.append((path + tag_text(tag), vr, raw))

    def record(self, path: str, tag: int, vr: bytes, raw: bytes) -> None:
        """Record an element the walker found suspect."""
        self.elements.append((path + tag_text(tag), vr.decode(), raw))

    def element(self, win: Window, path: str, tag: int, vr: bytes | None, length: int,
                pos: int, implicit: bool, little: bool, depth: int = 0) -> int:
        """Look at one element whose value starts at ``pos`` (in a dataset nested ``depth``
        sequences deep); return the offset after it. Raises :class:`~migrate_fs.elements.Invalid`
        (an unknown VR, tags out of order or nesting past MAX_NESTING, anywhere inside)."""
        name = vr.decode("latin-1") if vr is not None else dictionary_vr(tag)
        private = tag >> 16 & 1  # private: not recorded
        if length == UNDEFINED:
            return self.items(win, pos, None, implicit or name == "UN", little,
                              None if private else f"{path}{tag_text(tag)}", depth + 1)
        end = pos + length
        if end > win.size:
            raise Truncated(f"element {tag_text(tag)} declares {length} bytes, the object "
                            f"holds {win.size - pos}")
        if name in TEXT_VRS:  # the common case first; the tag path is built only if recorded
            if not private:
                self.value(path, tag, name, win.bytes(pos, length))
        elif name == "SQ":  # items must tile the value: a copy of broken items is no DICOM
            self.items(win, pos, end, implicit, little,
                       None if private else f"{path}{tag_text(tag)}", depth + 1)
        elif name == "UN" and not private and length and dictionary_vr(tag) == "SQ":
            # The writer writes it as the sequence it is (rule un_to_known_vr): its implicit
            # VR items must hold up as such, all the way down. Checked by a scanner of its
            # own: nothing recorded, as for any UN.
            Scanner().items(win, pos, end, True, little, f"{path}{tag_text(tag)}", depth + 1)
        elif tag == CHARSET_TAG and name != "UN":
            raise Malformed(f"(0008,0005) SpecificCharacterSet (value at byte {pos}) has VR "
                            f"{name}: no reader can take a character set from it (pydicom "
                            "cannot read the dataset)")
        return end

    def items(self, win: Window, pos: int, end: int | None, implicit: bool, little: bool,
              path: str | None, depth: int = 1) -> int:
        """Walk the items of a sequence (at nesting level ``depth``) from ``pos`` to ``end``
        (or its delimiter); ``path`` None means the items' values are not recorded (private
        sequences). Recursion is bounded: a sequence deeper than MAX_NESTING is refused. Items
        and their elements must end where their sequence and item do (Malformed)."""
        if depth > MAX_NESTING:
            raise NestingTooDeep(f"a sequence at byte {pos} is nested {depth} levels deep "
                                 f"(more than {MAX_NESTING})")
        index = 0
        while end is None or pos < end:
            tag, _, length, value = decode_element_header(win, pos, True, little)
            if tag == SEQUENCE_END:
                return value
            if tag != ITEM:
                raise Malformed(f"expected an item at byte {pos}, found {tag_text(tag)}")
            item_end = None if length == UNDEFINED else value + length
            if item_end is not None and item_end > win.size:
                raise Truncated(f"the item at byte {pos} declares {length} bytes, the object "
                                f"holds {win.size - value}")
            if item_end is not None and end is not None and item_end > end:
                raise Malformed(f"the item at byte {pos} declares {length} bytes, past the end "
                                f"of its sequence at byte {end}")
            item_path = f"{path}[{index}]." if path is not None else None
            pos = self._item(win, value, item_end if item_end is not None else end,
                             item_end is not None, implicit, little, item_path, depth)
            index += 1
        return pos

    def _item(self, win: Window, pos: int, end: int | None, bounded: bool, implicit: bool,
              little: bool, path: str | None, depth: int) -> int:
        """Walk the elements of an item up to ``end``: its own end (``bounded``), or its
        sequence's, before which its delimiter must come."""
        start, last, last_at = pos, -1, -1
        fast = little and not implicit
        checks, scan = (CLEAN_BYTES, self) if path is not None else (_NO_CHECKS, None)
        while end is None or pos < end:
            if fast:  # a run of plain elements in one loop, then the general case below
                pos, last, last_at = plain_run(win, pos, last, last_at, _NOTHING, {}, checks,
                                               scan, path or "", end)
                if end is not None and pos >= end:
                    break
            tag, vr, length, value = decode_element_header(win, pos, implicit, little)
            if tag == ITEM_END:
                if bounded:  # which end is the item's: its length or its delimiter?
                    raise Malformed(f"an item delimiter at byte {pos} inside the item at byte "
                                    f"{start - 8}, whose length says it ends at byte {end}")
                return value
            if tag <= last:  # raises unless a byte-for-byte repeat, which is stepped over
                check_repeat(win, tag, last, last_at, pos, value, length)
                self.repeated.append(f"{path or ''}{tag_text(tag)}")
                last_at, pos = pos, value + length
                continue
            last, last_at = tag, pos
            if path is None:  # inside a private sequence: step over, record nothing
                if length == UNDEFINED:
                    pos = self.items(win, value, None, implicit or vr == b"UN", little, None,
                                     depth + 1)
                else:
                    pos = value + length
                continue
            pos = self.element(win, path, tag, vr, length, value, implicit, little, depth)
        if not bounded:
            raise Malformed(f"the item at byte {start - 8} has no delimiter before the end of "
                            f"its sequence at byte {end}")
        if pos != end:
            raise Malformed(f"an element of the item at byte {start - 8} runs past its end "
                            f"at byte {end}")
        return pos
