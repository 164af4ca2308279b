"""The catalogue of problem codes: the one place where every reason a source object can be
quarantined, skipped or flagged is defined.

Each code has a severity: ``error`` means the object cannot be migrated as it is and is
quarantined; ``warning`` means it is migrated and the problem is recorded; ``skip`` means the
object is recorded but deliberately not migrated (it is not an instance, or it is a copy).
``manifests/SCHEMA.md`` lists the same table; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Severity = Literal["error", "warning", "skip"]

# A problem entry and a change entry, as the manifests' ``problems`` and ``changes`` hold them.
# ``severity`` is what the problem meant for this object in the plan (SEVERITIES; null in the
# inventory, which decides nothing).
PROBLEM = pa.struct([("code", pa.string()), ("message", pa.string()),
                     ("severity", pa.string())])
SEVERITIES = ("info", "fixed", "warning", "blocking")
CHANGE = pa.struct([("tag", pa.string()), ("keyword", pa.string()), ("old", pa.string()),
                    ("new", pa.string()), ("rule", pa.string())])


@dataclass(frozen=True)
class Code:
    """A problem code: its name, severity and what it means for the user."""

    name: str
    severity: Severity
    description: str


CATALOGUE: dict[str, Code] = {
    c.name: c
    for c in [
        Code("empty_file", "error", "The file has zero bytes."),
        Code("not_dicom", "error",
             "Neither a Part 10 file (no 'DICM' at byte 128) nor a plausible raw dataset "
             "(first element, VR and byte order do not look like DICOM, or no identifying UID)."),
        Code("not_regular_file", "error",
             "A symbolic link, device, FIFO or socket: recorded, never followed or read."),
        Code("undecodable_path", "error",
             "The file name is not valid UTF-8; the locator shows it escaped. Rename the file "
             "in a copy of the export to migrate it."),
        Code("unreadable_source", "error",
             "The file or folder could not be opened or read (permissions, I/O error)."),
        Code("truncated", "error",
             "The file ends before a declared element or the pixel data ends."),
        Code("missing_pixel_data", "warning",
             "The header describes an image (Rows, Columns, or an image SOP class) but there "
             "is no Pixel Data: a header-only object an export left without pixels. Migrated "
             "as it is (a new PACS accepts it) unless [problems] missing_pixel_data = "
             "\"quarantine\" or profile = \"strict\"."),
        Code("no_patient_study", "warning",
             "The object's IOD has no Patient, Study or Series (a Color Palette, a Hanging "
             "Protocol...): it is written under _no_patient/<SOP class>/, and a study-based "
             "PACS will not index it."),
        Code("unreadable_header", "error",
             "The header could not be parsed (corrupt element structure, bad file meta)."),
        Code("invalid_vr", "error",
             "An element of an explicit VR dataset has VR bytes that are not a DICOM VR (a "
             "corrupt header, or an implicit VR element or item inside an explicit VR "
             "dataset); the message names the tag and byte. A copy would not be readable DICOM."),
        Code("tag_order", "error",
             "An element's tag is not above the one before it, at the top level or in a "
             "sequence item (the message says which tag follows which): the order DICOM "
             "requires is broken, a copy would carry it."),
        Code("nesting_too_deep", "error",
             "Sequences are nested more than 64 levels deep (real data stays below 10): "
             "corrupt or crafted; not parsed further."),
        Code("deflate_bomb", "error",
             "A deflated dataset inflates to more than max(64 MiB, 200 x its compressed size): "
             "not inflated further."),
        Code("repeated_element", "warning",
             "An element follows an element with the same tag and the same bytes (pydicom's "
             "palettes repeat SOPInstanceUID): readers keep one value, so the object is "
             "migrated; the output carries both copies as the source does. A repeat with "
             "other bytes is tag_order."),
        Code("invalid_file_meta", "warning",
             "A file meta element's length is not a multiple of its VR's size (a 3-byte group "
             "length, say): pydicom refuses to read the source. The file meta is regenerated "
             "on writing, so the object is migrated."),
        Code("rule_error", "error",
             "Applying the rules to this object failed (the message names the exception): a "
             "value the rules could not handle; the plan went on with the other objects."),
        Code("unsupported_transfer_syntax", "error",
             "The transfer syntax is not one migrate-fs can re-encode or splice."),
        Code("missing_uid", "error",
             "SOPClassUID or SOPInstanceUID is missing or empty: the object has no identity "
             "(a missing study or series UID is missing_attribute)."),
        Code("archive", "skip",
             "An archive (tar: plain, gz, bz2 or xz; or zip) found in the export: not migrated "
             "itself; each of its members has a row of its own."),
        Code("archive_directory", "skip", "A directory entry of an archive."),
        Code("archive_hardlink", "skip",
             "A hard link entry of an archive: its content is the linked member's, which has "
             "its own row."),
        Code("archive_symlink", "error",
             "A symbolic link entry of an archive: recorded, never followed."),
        Code("archive_special", "error",
             "A device, FIFO or other special entry of an archive: recorded, never read."),
        Code("unsafe_member_path", "error",
             "An archive member whose name is absolute or contains '..': recorded, never used "
             "as a path and not read."),
        Code("archive_truncated", "error",
             "The archive ends (or its compressed stream breaks) inside this member's data."),
        Code("archive_corrupt", "error",
             "A damaged region of the archive (broken headers, garbage): the row's size is the "
             "bytes that could not be read, its member_offset where they start; reading goes "
             "on at the next valid header, so every member before and after it is processed."),
        Code("path_too_long", "error",
             "The object's path is longer than the system can open (PATH_MAX, 4096 bytes on "
             "Linux): it was listed, never read. Move its folder up (or shorten folder names) "
             "in a copy of the export to migrate it."),
        Code("dicomdir", "skip",
             "A DICOMDIR media directory: recorded, not migrated as an instance."),
        Code("duplicate", "skip",
             "Another object of the run has the same SOPInstanceUID and the same content "
             "(equal datasets as written, whatever their encoding): that copy (duplicate_of) "
             "is migrated, this one is skipped."),
        Code("transfer_syntax_variant", "skip",
             "Another object has the same SOPInstanceUID and the same image in another "
             "encoding, proven by decoding (equal pixel values for a lossless copy; equal "
             "rows, columns, frames, samples and bits for a lossy one): the lossless copy "
             "(duplicate_of) is migrated, this one skipped ([duplicates] variants)."),
        Code("kept_over_variant", "warning",
             "This copy was migrated and other encodings of the same image, under the same "
             "SOPInstanceUID, were skipped (transfer_syntax_variant); the message names them."),
        Code("kept_over_conflict", "warning",
             "This copy was migrated although other objects with the same SOPInstanceUID "
             "hold different content: [duplicates] conflict chose it (or gave the others new "
             "UIDs); the message names the others and what differs."),
        Code("uid_conflict", "error",
             "Other objects have the same SOPInstanceUID and different content; the message "
             "says what differs ('differs' column). [duplicates] conflict decides: quarantine "
             "all (default), keep the newest, or keep all with new UIDs."),
        Code("content_duplicate", "warning",
             "Another object (duplicate_of) has the same pixel data and identifying "
             "attributes under another SOPInstanceUID; migrated unless [duplicates] "
             "content_duplicates = \"skip\"."),
        Code("output_path_collision", "error",
             "Another object maps to an output path that differs only in letter case; "
             "on a case-insensitive file system the two would collide. (Under the default "
             "uids layout; any other layout suffixes the path instead: "
             "output_path_suffixed.)"),
        Code("output_path_suffixed", "warning",
             "The output layout ([output] layout, --layout) gives this object the path of "
             "another object (the same in letter case), which is first in locator order and "
             "keeps it; this one is written to <name>~<object_id>.dcm in the same folder "
             "(output_path), never over the other. The message names the other object."),
        Code("transfer_syntax_mismatch", "warning",
             "The file meta declares one encoding but the dataset is encoded in another; "
             "the actual encoding is used."),
        Code("missing_file_meta", "warning",
             "A raw dataset without preamble or file meta; the encoding was detected from "
             "the bytes and the file meta is generated."),
        Code("undecodable_text", "warning",
             "A text value could not be decoded with the declared character set; the manifest "
             "shows it with replacement characters, the output keeps the original bytes."),
        # Found by the rules in the plan; the rules configuration ([rules], [required],
        # [problems]) decides whether each quarantines or is only recorded (or fixed).
        Code("missing_character_set", "error",
             "Text with non-ASCII bytes and no Specific Character Set; nothing is guessed. Add "
             "an override for \"\" in [charset.overrides] (the message hints at the bytes)."),
        Code("invalid_character_set", "error",
             "The Specific Character Set is not a DICOM defined term (e.g. 'Not Supplied'); "
             "add an override for it in [charset.overrides]."),
        Code("trailing_nul", "warning", "A text value ends in NUL bytes (rule trailing_nul)."),
        Code("invalid_date", "warning", "A DA value is not YYYYMMDD (rule date_format)."),
        Code("invalid_time", "warning", "A TM value is not HHMMSS.FFFFFF (rule time_format)."),
        Code("invalid_datetime", "warning",
             "A DT value is not YYYYMMDDHHMMSS.FFFFFF&ZZXX (rule datetime_format)."),
        Code("invalid_decimal_string", "warning",
             "A DS value is not a decimal string of at most 16 characters (rule "
             "decimal_string)."),
        Code("invalid_integer_string", "warning",
             "An IS value is not an integer string of at most 12 characters (rule "
             "integer_string)."),
        Code("invalid_code_string", "warning",
             "A CS value has characters other than A-Z, 0-9, space and underscore (rule "
             "code_string)."),
        Code("value_too_long", "warning",
             "A value is longer than its VR allows (rule value_too_long)."),
        Code("odd_length_value", "warning",
             "A text value has an odd length; it is padded (rule odd_length)."),
        Code("invalid_uid", "warning",
             "A UID has bad characters, a leading zero in a component, over 64 characters or "
             "is empty; it is remapped, references included (rule invalid_uid)."),
        Code("missing_attribute", "error",
             "A required attribute is absent (or empty, for type 1 attributes); see "
             "[required] in the rules configuration for how to fix it instead."),
        Code("pixel_data_length_mismatch", "error",
             "Native pixel data whose length is not Rows x Columns x SamplesPerPixel x "
             "BitsAllocated/8 x NumberOfFrames."),
        Code("pixel_data_corrupt", "error",
             "Encapsulated pixel data whose item structure is broken (offset table, "
             "fragments, delimiter)."),
        Code("decode_failed", "error",
             "The decode check (--decode-check) could not decode the pixel data: the data is "
             "corrupt."),
        Code("decoder_crash", "error",
             "The decoder process died (or hung) decoding this object's pixel data; the run "
             "went on."),
        Code("decoder_unavailable", "warning",
             "No installed decoder supports this object's compression, so the decode check "
             "could not be made (not a sign of corrupt data)."),
        Code("lossy_compression", "warning",
             "The pixel data is or was lossy compressed (transfer syntax or "
             "LossyImageCompression 01); LossyImageCompression is kept as it is."),
        Code("standard_element_as_un", "warning",
             "Standard (non-private) elements of an explicit VR dataset are encoded with VR UN "
             "although the dictionary knows their VR (the message names them): the header is "
             "re-encoded and they are written with their dictionary VR (rule un_to_known_vr)."),
        Code("correction_conflict", "error",
             "The legacy database corrections give different values for this object's "
             "study, accession or patient; nothing was guessed."),
        Code("not_in_legacy_db", "warning",
             "The object's study is not in the legacy database corrections file (an orphan)."),
        Code("source_changed", "error",
             "The source is not the file the inventory saw: another size, modification or "
             "status-change time, device or inode, other first bytes, a symbolic link now, or "
             "an archive member no longer at its offset. Run inventory and plan again."),
        Code("unsafe_path", "error",
             "The planned output path would leave the output root; nothing was written."),
        Code("output_exists_different", "error",
             "A different file already exists at the output path; it was not overwritten."),
        Code("write_failed", "error",
             "Writing the output failed (see the message: disk full, permissions, ...)."),
        # Found by `migrate-fs verify` in a written output: each is a failed check (the verify
        # fails, exit code 4); the source's own problems there are unreadable_source and
        # source_changed (the pixel data could not be compared).
        Code("output_missing", "error",
             "verify: the output the result records is not at its path (or is a symbolic link, "
             "not a regular file, or cannot be opened)."),
        Code("output_size_mismatch", "error",
             "verify: the output's size is not the output_size the result records."),
        Code("output_sha256_mismatch", "error",
             "verify: the output's SHA-256 is not the output_sha256 the result records: it "
             "changed (or was damaged) after it was written."),
        Code("output_not_part10", "error",
             "verify: pydicom cannot read the output as a Part 10 file (no preamble and 'DICM', "
             "a broken header, or an empty dataset)."),
        Code("file_meta_mismatch", "error",
             "verify: the output's file meta disagrees with its dataset or the plan "
             "(MediaStorageSOPClassUID, MediaStorageSOPInstanceUID, TransferSyntaxUID)."),
        Code("output_uid_mismatch", "error",
             "verify: the output's SOPClassUID, SOPInstanceUID, StudyInstanceUID, "
             "SeriesInstanceUID or PatientID is not the plan's (or is encoded as UN)."),
        Code("output_change_missing", "error",
             "verify: a planned change (a changes entry) does not hold in the output: the "
             "element has another value, another VR, or is absent (or present, for a removal)."),
        Code("pixel_data_differs", "error",
             "verify: the output's Pixel Data value (for encapsulated data the whole "
             "encapsulated value) is not the source's as the writer writes it (byte for byte; "
             "big endian values swapped): compared for the sample, or for every object with "
             "--all."),
    ]
}


@dataclass(frozen=True)
class Problem:
    """One problem found on one object: a catalogue code and a specific message."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown problem code {self.code!r}: add it to CATALOGUE")

    @property
    def severity(self) -> Severity:
        return CATALOGUE[self.code].severity

    def as_row(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def blocks(code: str, policies: Mapping[str, str] | None = None) -> bool:
    """Whether a problem with this code stops migration: the configured policy where there is
    one (``Config.code_policies()``), else its severity (error or skip)."""
    policy = policies.get(code) if policies else None
    return policy == "quarantine" if policy else CATALOGUE[code].severity != "warning"


def first_blocking(problems: Iterable[Mapping[str, str]],
                   policies: Mapping[str, str] | None = None) -> str | None:
    """The code of the first problem that stops migration, or None."""
    return next((p["code"] for p in problems if blocks(p["code"], policies)), None)


def outcome_severity(code: str, message: str | None, migrated: bool, reason: str | None,
                     policies: Mapping[str, str] | None = None) -> str:
    """What a problem meant for its object (one of SEVERITIES): ``info`` for a code that
    only says why an object is deliberately not migrated (an archive, a copy: severity skip);
    ``blocking`` when it stopped the object (its reason, or a code that stops migration under
    the run's policies, on an object not migrated); ``fixed`` when a rule repaired it (its
    message starts with ``fixed:``, its change is in ``changes``); else ``warning`` (migrated
    with the problem as it is)."""
    if CATALOGUE[code].severity == "skip":
        return "info"
    if not migrated and (code == reason or blocks(code, policies)):
        return "blocking"
    if message is not None and message.startswith("fixed:"):
        return "fixed"
    return "warning"


def markdown_table() -> str:
    """The catalogue as a Markdown table, for the documentation."""
    lines = ["| code | severity | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.severity} | {c.description} |" for c in CATALOGUE.values()]
    return "\n".join(lines)
