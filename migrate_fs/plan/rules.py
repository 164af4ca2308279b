"""rules: normalize and validate one object, as a pure function of what the inventory recorded.

:func:`apply_rules` takes an object's recorded elements (:mod:`migrate_fs.scan`), its declared
character set, the required attributes it lacks and the corrections the legacy database gives
it, and returns the problems found and the changes to make, each change naming its rule. It does
no I/O and depends only on its arguments and the configuration, so every worker, shard and
re-run computes the same result. The plan calls it once per distinct input (most objects of an
archive share one: "ReferringPhysicianName absent", say).

Order: character set first (nothing else can be judged on text that cannot be decoded), then
the value rules on each element, then UIDs, required attributes, and finally the choice of the
output character set (a change whose new text the declared set cannot hold makes the object
UTF-8).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.uid import UID_dictionary

from migrate_fs import charsets, iods, values
from migrate_fs.charsets import CHARSET_VRS
from migrate_fs.config import RULES, Config
from migrate_fs.transcode import SPECIFIC_CHARACTER_SET, dictionary_vr, last_tag, tag_text

UTF8_TERM = "ISO_IR 192"
# Attributes whose values name a class or a coding scheme, not an instance: never remapped.
CLASS_UID_KEYWORDS = frozenset({"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID",
                                "TransferSyntaxUID", "CodingSchemeUID",
                                "ContextGroupExtensionCreatorUID",
                                "MappingResourceUID", "AffectedSOPClassUID",
                                "RelatedGeneralSOPClassUID", "OriginalSpecializedSOPClassUID",
                                "SOPClassesInStudySequence", "ReferencedTransferSyntaxUIDInFile",
                                "PrivateInformationCreatorUID"})
MAX_PASSES = 4  # repairs of one value applied one after the other (a NUL, then a date format)

Change = tuple[str, str, str | None, str | None, str]  # tag path, keyword, old, new, rule
Problem = tuple[str, str, bool]  # code, message, blocks migration


@dataclass(frozen=True)
class RuleInput:
    """What the rules see of one object (hashable: the plan caches results per distinct input)."""

    elements: tuple[tuple[str, str, bytes], ...] = ()
    charset: str | None = None
    missing: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    # For generated UIDs: (keyword, value) of attributes they are derived from.
    context: tuple[tuple[str, str | None], ...] = ()
    corrections: tuple[Change, ...] = ()
    sop_class: str | None = None  # what the IOD requires depends on it (migrate_fs.iods)


@dataclass
class RuleOutput:
    problems: list[Problem]
    changes: list[Change]


def keyword_of(path: str) -> str:
    """The keyword of the last tag of a tag path such as ``(0008,1115)[0].(0008,1155)``."""
    return keyword_for_tag(last_tag(path)) or ""


def apply_rules(obj: RuleInput, config: Config) -> RuleOutput:
    """Problems and changes for one object (see the module docstring for the order). Never
    raises: if the rules fail on this object's values, the object gets ``rule_error`` (which
    quarantines it) and the plan goes on with the others."""
    try:
        return _apply_rules(obj, config)
    except Exception as exc:  # noqa: BLE001 - one object's values never stop a plan
        return RuleOutput([("rule_error", f"the rules failed on this object: "
                            f"{type(exc).__name__}: {exc}", True)], [])


def _apply_rules(obj: RuleInput, config: Config) -> RuleOutput:
    out = RuleOutput([], [])
    policy = config.rules
    charset = charsets.resolve(obj.charset, config.overrides)
    needs_decoding = any(vr in CHARSET_VRS and charsets.needs_charset(raw)
                         for _, vr, raw in obj.elements)
    charset_ok = _charset_problem(charset, policy["character_set"], needs_decoding, out)
    text_changes: dict[str, tuple[str, str, str]] = {}  # path -> (vr, decoded text, keyword)
    for path, vr, raw in obj.elements:
        if path == SPECIFIC_CHARACTER_SET:
            continue  # the character set rule's business
        keyword = keyword_of(path)
        if vr in CHARSET_VRS and charsets.needs_charset(raw):
            decoded = charsets.decode(raw, vr, charset, keyword)
            if decoded.text is None:
                out.problems.append((decoded.problem or "undecodable_text",
                                     f"{path} {keyword}: {decoded.message}",
                                     policy["character_set"] == "quarantine"))
                continue
            text = decoded.text
            if charset_ok:
                text_changes[path] = (vr, text, keyword)
        else:
            text = raw.decode("latin-1")
            if vr == "UI" and text.endswith("\x00"):
                text = text[:-1]  # the padding of a UID, not part of it
        new = _repair(path, vr, keyword, text, config, out)
        if new is None and len(raw) % 2:
            if policy["odd_length"] == "quarantine" or policy["odd_length"] == "warn":
                out.problems.append(("odd_length_value", f"{path} {keyword} has an odd length "
                                     f"({len(raw)} bytes)", policy["odd_length"] == "quarantine"))
            else:
                out.changes.append((path, keyword, text, text, "odd_length"))
                out.problems.append(("odd_length_value", f"fixed: {path} {keyword} padded to "
                                     "an even length", False))
    _required(obj, config, out)
    out.changes.extend(obj.corrections)
    _output_charset(obj, charset, charset_ok, text_changes, config, out)
    return out


def _charset_problem(charset: charsets.CharacterSet, rule: str, needs_decoding: bool,
                     out: RuleOutput) -> bool:
    """Record an invalid or overridden declared set; False when text cannot be trusted.

    An invalid declared set on an object whose text is all ASCII garbles nothing: it is
    recorded (and replaced where the rule fixes it) but never quarantines."""
    if charset.problem is None:
        return True
    if charset.problem == "character_set_override":
        return True  # the user said what the bytes are; _output_charset declares it
    fixable = rule == "fix" and bool(charset.terms) and charset.dicom_terms
    if fixable:
        new = "\\".join(charset.terms)
        out.changes.append((SPECIFIC_CHARACTER_SET, "SpecificCharacterSet",
                            "\\".join(charset.declared), new, "character_set"))
        out.problems.append((charset.problem, f"fixed: {charset.message}", False))
        return True
    if not needs_decoding:  # nothing depends on it: normalized, not copied
        declared = "\\".join(charset.declared)
        normal = "\\".join(charset.terms) if charset.terms and charset.dicom_terms else None
        out.changes.append((SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", declared, normal,
                            "character_set"))
        done = f"set to {normal!r}" if normal else "removed (the default repertoire)"
        out.problems.append((charset.problem, f"fixed: {charset.message}; all text is ASCII, "
                             f"so SpecificCharacterSet is {done}", False))
        return True
    unwritable = any("\x00" in term for term in charset.declared)  # no reader takes it back
    out.problems.append((charset.problem, (charset.message or "") + (
        "; it holds a NUL byte and cannot be written as it is" if unwritable else ""),
        rule == "quarantine" or unwritable))
    return rule != "quarantine" and not unwritable


def _repair(path: str, vr: str, keyword: str, text: str, config: Config,
            out: RuleOutput) -> str | None:
    """Apply the value rules to one element; the new value if any rule changed it."""
    policy = config.rules
    current, changed = text, False
    for _ in range(MAX_PASSES):
        if vr == "UI":
            findings = _uid_findings(path, keyword, current, config)
        else:
            findings = values.check_value(vr, current, keyword, date_order=config.date_order
                                          or None, max_length=True)
        fixed = False
        for finding in findings:
            rule, code = policy.get(finding.rule, "warn"), RULES[finding.rule].codes[0]
            if rule == "fix" and finding.new is not None:
                out.changes.append((path, keyword, current, finding.new, finding.rule))
                out.problems.append((code, f"fixed: {path} {finding.message}", False))
                current, changed, fixed = finding.new, True, True
                break
            out.problems.append((code, f"{path} {finding.message}"
                                 + (" (could not be repaired)" if rule == "fix" else ""),
                                 rule == "quarantine"))
        if not fixed:
            break
    return current if changed else None


def _uid_findings(path: str, keyword: str, value: str, config: Config) -> list[values.Finding]:
    """Invalid UIDs (each value of a multi-valued element): padding with spaces is removed;
    any other invalid UID is remapped, unless it names a class (then it is only reported)."""
    olds = value.split("\\")
    news, reasons = [], []
    for old in olds:
        stripped = old.rstrip("\x00 ")
        reason = values.uid_problem(stripped) if stripped else None
        if reason is None or stripped in UID_dictionary:
            news.append(stripped)
            if stripped != old.rstrip("\x00"):
                reasons.append(f"{stripped!r} is padded with spaces")
            continue
        reasons.append(f"{stripped!r}: {reason}")
        news.append(values.remap_uid(stripped, config.namespace))
    if not reasons:
        return []
    message = f"{keyword} " + "; ".join(reasons)
    if keyword in CLASS_UID_KEYWORDS:
        return [values.Finding("invalid_uid", message + " (a class UID: not "
                               "remapped)", None)]
    return [values.Finding("invalid_uid", message, "\\".join(news))]


def _required(obj: RuleInput, config: Config, out: RuleOutput) -> None:
    """Attributes the object's IOD requires that are missing (absent; or empty, for Type 1),
    handled as [required] says. Type 3 and conditional (1C, 2C) attributes are not checked."""
    context = dict(obj.context)
    types = iods.requirements(obj.sop_class)
    iod = iods.iod_of(obj.sop_class) or "the generic image IOD (SOP class not in the tables)"
    lacking = [(k, None) for k in obj.missing] + [(k, "") for k in obj.empty]
    for keyword, old in lacking:
        kind = types.get(keyword)
        how = config.required.get(keyword)
        if how is None or kind not in ("1", "2"):
            continue
        state = f"{'absent' if old is None else 'empty'} (Type {kind} in {iod})"
        if kind == "2" and old is not None:  # empty is allowed; an empty PatientID is news
            if keyword in EMPTY_REPORTED:
                out.problems.append(("missing_attribute", f"{keyword} is {state}: allowed, "
                                     "migrated as it is; the new PACS files it under an empty "
                                     f"{keyword}", False))
            continue
        tag = _tag_path(keyword)
        if how == "empty" and kind == "2":
            out.changes.append((tag, keyword, None, "", "required_attributes"))
            out.problems.append(("missing_attribute", f"fixed: {keyword} {state}; added "
                                 "without a value", False))
        elif how.startswith("value:"):
            out.changes.append((tag, keyword, old, how[len("value:"):], "required_attributes"))
            out.problems.append(("missing_attribute", f"fixed: {keyword} {state}; set to "
                                 f"{how[len('value:'):]!r}", False))
        elif how == "generate":
            new, basis = _generated(keyword, context, config.namespace)
            out.changes.append((tag, keyword, old, new, "required_attributes"))
            out.problems.append(("missing_attribute", f"fixed: {keyword} {state}; generated "
                                 f"{basis}", False))
        else:
            hint = f'; [required] {keyword} = "generate" or "warn" migrates it' \
                if keyword in GENERATED_FROM else f'; [required] {keyword} = "warn" migrates it'
            out.problems.append(("missing_attribute", f"{keyword} is {state}"
                                 + (hint if how == "quarantine" else "; migrated as it is"),
                                 how == "quarantine"))


# Type 2 attributes whose empty value (allowed) is still reported: a PACS files by them.
EMPTY_REPORTED = frozenset({"PatientID"})
# What a generated UID derives from, in order of preference: values that identify the study
# (or series) when there are some; else the object's next level down, so that a generated UID
# never merges objects that nothing says belong together.
GENERATED_FROM: dict[str, tuple[tuple[str, ...], ...]] = {
    "StudyInstanceUID": (("PatientID", "AccessionNumber", "StudyDate", "StudyTime"),
                         ("SeriesInstanceUID",), ("SOPInstanceUID",)),
    "SeriesInstanceUID": (("StudyInstanceUID", "Modality", "SeriesNumber"),
                          ("SOPInstanceUID",)),
}
# Of those, the values that identify the study (series) itself: without one of them, the
# values above it (the patient, the study) say nothing about which study (series) this is.
IDENTIFYING = {"StudyInstanceUID": {"AccessionNumber", "StudyDate", "StudyTime"},
               "SeriesInstanceUID": {"SeriesNumber"}}


def _generated(keyword: str, context: dict[str, str | None], namespace: str) -> tuple[str, str]:
    """A deterministic UID for a missing study or series UID, and what it was derived from."""
    for basis in GENERATED_FROM[keyword]:
        parts = [context.get(k) or "" for k in basis]
        usable = any(context.get(k) for k in basis if k in IDENTIFYING[keyword]) \
            if len(basis) > 1 else bool(parts[0])
        if usable:
            level = {"SeriesInstanceUID": "series", "SOPInstanceUID": "object"}.get(basis[0])
            how = f"for this {level} alone (nothing identifies its " \
                  f"{'study' if keyword == 'StudyInstanceUID' else 'series'})" if level else \
                f"from {', '.join(f'{k}={v!r}' for k, v in zip(basis, parts, strict=True))} " \
                "(objects with the same values share it)"
            return values.generated_uid(namespace, keyword, *basis, *parts), how
    return (values.generated_uid(namespace, keyword, "unidentified"),
            "with nothing to derive it from")


def _tag_path(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag_text(tag)


def _output_charset(obj: RuleInput, charset: charsets.CharacterSet, charset_ok: bool,
                    text_changes: dict[str, tuple[str, str, str]], config: Config,
                    out: RuleOutput) -> None:
    """Re-encode to UTF-8 when asked, when the actual set has no DICOM name, or when a new
    value cannot be written in the declared set."""
    if not charset_ok:
        return
    terms = charset.terms
    declared_after = next((c[3] for c in out.changes if c[0] == SPECIFIC_CHARACTER_SET), None)
    if declared_after is not None:
        terms = tuple(declared_after.split("\\"))
    unencodable = [c for c in out.changes if c[3] and not c[3].isascii()
                   and dictionary_vr(last_tag(c[0])) in CHARSET_VRS
                   and charsets.encode(c[3], dictionary_vr(last_tag(c[0])), terms) is None]
    wanted = config.charset_output == "utf8" or not charset.dicom_terms or bool(unencodable)
    has_text = bool(text_changes) or any(c[3] and not c[3].isascii() for c in out.changes)
    if not wanted and charset.problem == "character_set_override" and declared_after is None \
            and charset.terms and (has_text or obj.charset):
        out.changes.append((SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", obj.charset,
                            "\\".join(charset.terms), "character_set"))
        return
    if not wanted or terms == charsets.UTF8:
        return
    if not has_text:
        return  # nothing but ASCII: the declared set stays as it is
    changed = {c[0] for c in out.changes}
    for path, (_, text, keyword) in text_changes.items():
        if path not in changed:
            out.changes.append((path, keyword, text, text, "charset_utf8"))
    out.changes[:] = [c for c in out.changes if c[0] != SPECIFIC_CHARACTER_SET]
    old = obj.charset
    out.changes.append((SPECIFIC_CHARACTER_SET, "SpecificCharacterSet", old, UTF8_TERM,
                        "charset_utf8"))

