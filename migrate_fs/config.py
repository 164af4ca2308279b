"""config: the rules configuration (TOML), its documented defaults and its validation.

``migrate-fs plan --config rules.toml`` reads it; ``migrate-fs rules --config rules.toml``
prints the effective set. Every key is optional: :data:`DEFAULT_TOML` is the full file with
every default, and an unknown key is an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from migrate_fs.errors import ConfigError
from migrate_fs.paths import LAYOUT_FIELDS, MISSING, PRESETS, Layout, parse_layout

Policy = Literal["fix", "warn", "quarantine"]
POLICIES = ("fix", "warn", "quarantine")



class Rule(NamedTuple):
    """A rule: its default policy, the problem codes it records, what it does."""

    default: Policy | None  # None: not configurable (it only names the rule of a change)
    codes: tuple[str, ...]  # codes of the catalogue (problems.CATALOGUE)
    description: str


# The one table of rules: every name a [rules] key or a change's ``rule`` can have.
_RULE_SPECS: dict[str, tuple[Policy | None, tuple[str, ...], str]] = {
    "character_set": ("quarantine", ("missing_character_set", "invalid_character_set",
                                     "undecodable_text"),
                      "Text is decoded with the declared Specific Character Set (or the "
                      "override for it); text that cannot be decoded is never guessed. 'fix' "
                      "applies only to an invalid declared value with a known meaning."),
    "trailing_nul": ("fix", ("trailing_nul",), "Trailing NUL bytes in text values are removed."),
    "date_format": ("fix", ("invalid_date",),
                    "DA values such as 2001.01.01 or 1/2/2001 become YYYYMMDD (day/month order "
                    "from charset.date_order when ambiguous)."),
    "time_format": ("fix", ("invalid_time",), "TM values such as 12:30:45 become HHMMSS."),
    "datetime_format": ("fix", ("invalid_datetime",),
                        "DT values such as 2001-01-01 12:30 become YYYYMMDDHHMM."),
    "decimal_string": ("fix", ("invalid_decimal_string",),
                       "DS values: decimal comma, over 16 characters (reformatted)."),
    "integer_string": ("fix", ("invalid_integer_string",), "IS values such as 1.0 become 1."),
    "code_string": ("fix", ("invalid_code_string",), "Lowercase CS values become uppercase."),
    "value_too_long": ("warn", ("value_too_long",),
                       "Values longer than their VR allows. 'fix' truncates them (lossy: the "
                       "old value stays in the manifest)."),
    "odd_length": ("fix", ("odd_length_value",),
                   "Text values of odd length are padded (space, NUL for UIDs)."),
    "invalid_uid": ("fix", ("invalid_uid",),
                    "Invalid UIDs (bad characters, leading zeros, over 64 characters) are "
                    "remapped to 2.25.<uuid5(namespace, old UID)>, in every element of every "
                    "object of the run, references included."),
    "required_attributes": ("quarantine", ("missing_attribute",),
                            "Identifying attributes of the patient, study, series and instance "
                            "modules: see [required] for each attribute's policy."),
    "charset_utf8": (None, (), "A text value re-encoded to UTF-8 (charset.output = \"utf8\", an "
                                "override that is a Python codec, or a correction the declared "
                                "set cannot hold); SpecificCharacterSet becomes ISO_IR 192."),
    "legacy_db_correction": (None, ("correction_conflict", "not_in_legacy_db"),
                             "An attribute set to the value the legacy database corrections "
                             "file gives for the object's study, accession or patient."),
    "patient_merge": (None, (), "PatientID replaced by the surviving PatientID of a patient merge "
                                "in the corrections file (merge chains followed to their end)."),
    "duplicate_new_uid": (None, (), "A later copy of a same-UID conflict gets a new deterministic "
                                    "SOPInstanceUID ([duplicates] conflict = \"keep_all\")."),
    "drop_group_length": (None, (), "A group length element is dropped when a dataset is "
                                    "re-encoded: its value would no longer hold."),
    "vr_too_long_for_explicit_length": (None, (), "A value too long for its VR's 16-bit length "
                                                  "field in explicit VR is written as UN."),
    "un_to_known_vr": (None, ("standard_element_as_un",),
                       "A standard element encoded as UN is written with its dictionary VR "
                       "(value unchanged but for the padding its VR defines)."),
}
RULES: dict[str, Rule] = {name: Rule(*spec) for name, spec in _RULE_SPECS.items()}
# The rules a configuration sets a policy for ([rules]).
CONFIGURABLE: dict[str, Rule] = {k: r for k, r in RULES.items() if r.default is not None}

# [required]: what to do when an attribute the object's IOD requires is missing: absent, for a
# Type 2 attribute; absent or empty, for a Type 1 one (migrate_fs.iods: the standard's tables,
# by SOP class). "quarantine", "warn" (migrate as it is), "empty" (add a Type 2 attribute
# without a value; a Type 1 one is migrated as it is), "generate" (a deterministic UID:
# SeriesInstanceUID, StudyInstanceUID) or "value:TEXT". Every one of them is reported.
REQUIRED: dict[str, str] = {
    "SOPClassUID": "quarantine", "SOPInstanceUID": "quarantine",
    "StudyInstanceUID": "quarantine", "SeriesInstanceUID": "quarantine",
    "PatientID": "empty", "Modality": "warn",
    "PatientName": "empty", "PatientBirthDate": "empty", "PatientSex": "empty",
    "StudyDate": "empty", "StudyTime": "empty", "ReferringPhysicianName": "empty",
    "StudyID": "empty", "AccessionNumber": "empty", "SeriesNumber": "empty",
    "InstanceNumber": "empty",
}
# Type 1 wherever an IOD has them: "empty" cannot satisfy them.
TYPE_1 = frozenset({"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                    "Modality"})
GENERATABLE = frozenset({"StudyInstanceUID", "SeriesInstanceUID"})

# [problems]: the policy for problems the reader finds, where the user may choose.
PROBLEM_POLICIES: dict[str, Policy] = {
    "missing_pixel_data": "warn",
    "no_patient_study": "warn",
    "standard_element_as_un": "warn",
    "pixel_data_length_mismatch": "quarantine",
    "pixel_data_corrupt": "quarantine",
    "decode_failed": "quarantine",
    "decoder_crash": "quarantine",
    "decoder_unavailable": "warn",
    "lossy_compression": "warn",
    "not_in_legacy_db": "warn",
}

# profile = "faithful" (the default: migrate everything the new PACS can hold, report every
# deviation) or "strict" (quarantine every Type 1 and Type 2 violation of the IOD, image
# objects without pixel data, objects a study-based PACS does not index and standard elements
# encoded as UN). A profile sets the defaults of [required] and [problems]; explicit settings
# there override it.
PROFILES: dict[str, tuple[dict[str, str], dict[str, Policy]]] = {
    "faithful": (REQUIRED, PROBLEM_POLICIES),
    "strict": ({k: "quarantine" for k in REQUIRED},
               {**PROBLEM_POLICIES, "missing_pixel_data": "quarantine",
                "no_patient_study": "quarantine", "standard_element_as_un": "quarantine"}),
}

DEFAULT_TOML = """\
# migrate-fs rules configuration. Every key is optional; the values shown are the defaults.

# "faithful": migrate everything the new PACS can hold, exactly as it was, and report every
# deviation (a missing Type 2 attribute is added empty, an image header without pixel data is
# migrated with a warning). "strict": quarantine every Type 1 and Type 2 violation of the
# object's IOD, image objects without pixel data, objects without a patient (a Color Palette)
# and standard elements encoded as UN. The profile sets the defaults of [required] and
# [problems] below; what you set there overrides it.
profile = "faithful"

[migration]
# Namespace of the deterministic UIDs this migration generates (remapped and generated UIDs
# are 2.25.<uuid5(namespace, old value)>). Set one per migration and keep it: every shard,
# trial and re-run must use the same one, whatever the run is called.
namespace = "migrate-fs"

[charset]
# "keep": write text in the declared character set; "utf8": re-encode every non-ASCII text
# value to UTF-8 and declare ISO_IR 192. An override whose actual set is not a DICOM defined
# term (such as cp1251) always re-encodes to UTF-8.
output = "keep"
# Day/month order for dates such as 1/2/2001: "DMY", "MDY" or "" (ambiguous dates reported).
date_order = ""

[charset.overrides]
# declared value (or "" for absent) = actual character set (a DICOM defined term, several
# joined with a backslash, or a Python codec name such as "cp1251"). Example:
# "" = "ISO_IR 100"
# "Not Supplied" = "ISO_IR 100"

[rules]
# Policy per rule: "fix" (repair where the rule can, warn where it cannot), "warn" (record
# only) or "quarantine".
{rules}

[required]
# Per attribute: "quarantine", "warn", "empty" (add it without a value), "generate" (a
# deterministic UID; StudyInstanceUID and SeriesInstanceUID only) or "value:TEXT".
{required}

[problems]
# Policy for problems found while reading: "quarantine" or "warn".
{problems}

[duplicates]
# Same SOPInstanceUID, different content: "quarantine" every copy, keep one
# ("keep_newest_instance": by InstanceCreationDate/Time; "keep_newest_file": by file time) and
# quarantine the rest, "keep_legacy_db" (keep the copy whose file the legacy database lists, see
# legacy_db_files) or "keep_all" (the later copies get new deterministic SOPInstanceUIDs).
conflict = "quarantine"
# For keep_legacy_db: a CSV file with a "path" column, the storage paths the legacy database
# records for its instances (a path matches a copy whose locator ends with it).
legacy_db_files = ""
# Same SOPInstanceUID, each content in another transfer syntax (lossless and lossy copies of
# one image): "keep_lossless" (skip the others as duplicates) or "conflict" (as above).
variants = "keep_lossless"
# Different SOPInstanceUID, same pixel data and identifying attributes: "migrate" (reported),
# "skip" (skipped as duplicates) or "off" (not looked for: no pixel data is read for it).
content_duplicates = "migrate"

[pixel]
# Decode pixel data during the inventory, in a separate process that may crash:
# "none", "first" (first frame) or "all" (every frame).
decode_check = "none"
# The decode function the decoder process calls, as "module:function" (default: pydicom with
# pylibjpeg and its plugins, migrate_fs.decode:decode_pixels); it takes (file, mode) and
# yields decoded frames.
decoder = ""

[output]
# Where each migrated object goes below the output root (`plan --layout` overrides it): a
# preset or a pattern. Presets:
#   "uids"           <PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
#   "study-folders"  {study_folders}
#   "readable"       {readable}
# A pattern names the plan's output values (after corrections and rules) by DICOM keyword,
# with Python format specs and "|" fallbacks (the first with a value), and ends in .dcm:
# layout = "{{PatientID}}/{{StudyDate}}_{{Modality}}/{{SeriesNumber:03d}}/{{InstanceNumber}}.dcm"
# Fields: {fields}
# A missing or empty value renders as {missing}; a numeric spec on a value that is not a number
# gives the value's text. Each folder and file name is sanitized (migrate_fs/paths.py). Two
# objects on one path: the later (locator order) gets name~<object_id>.dcm and the warning
# output_path_suffixed. Objects without a patient (a Color Palette) always go to
# _no_patient/<SOP class>/<SOPInstanceUID>.dcm. A new layout needs a new plan only.
layout = "uids"
"""


DEFAULT_NAMESPACE = "migrate-fs"


@dataclass(frozen=True)
class Config:
    """The effective rules configuration."""

    namespace: str = DEFAULT_NAMESPACE
    profile: str = "faithful"
    charset_output: str = "keep"
    date_order: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    rules: dict[str, Policy] = field(
        default_factory=lambda: {k: r.default for k, r in CONFIGURABLE.items() if r.default})
    required: dict[str, str] = field(default_factory=lambda: dict(REQUIRED))
    problems: dict[str, Policy] = field(default_factory=lambda: dict(PROBLEM_POLICIES))
    decode_check: str = "none"
    decoder: str = ""
    conflict: str = "quarantine"
    variants: str = "keep_lossless"
    content_duplicates: str = "migrate"
    legacy_db_files: str = ""
    layout: str = "uids"  # [output] layout: a preset name or a pattern (paths.parse_layout)
    source: str | None = None  # the file it was read from

    def output_layout(self) -> Layout:
        """The parsed output layout (validated when the configuration was made)."""
        return parse_layout(self.layout)

    def code_policies(self) -> dict[str, Policy]:
        """Problem code -> policy, for every code the configuration decides."""
        policies: dict[str, Policy] = dict(self.problems)
        for rule, (_, codes, _) in CONFIGURABLE.items():
            for code in codes:
                policies[code] = self.rules[rule]
        return policies

    def as_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "profile": self.profile,
                "charset_output": self.charset_output,
                "date_order": self.date_order, "overrides": self.overrides,
                "rules": self.rules, "required": self.required, "problems": self.problems,
                "decode_check": self.decode_check, "decoder": self.decoder,
                "conflict": self.conflict, "variants": self.variants,
                "content_duplicates": self.content_duplicates,
                "legacy_db_files": self.legacy_db_files, "layout": self.layout,
                "source": self.source}


def default_toml() -> str:
    """The configuration file with every default, documented."""
    return DEFAULT_TOML.format(
        rules="\n".join(f'{k} = "{r.default}"' for k, r in CONFIGURABLE.items()),
        required="\n".join(f'{k} = "{v}"' for k, v in REQUIRED.items()),
        problems="\n".join(f'{k} = "{v}"' for k, v in PROBLEM_POLICIES.items()),
        study_folders=PRESETS["study-folders"].replace("{", "<").replace("}", ">"),
        readable=PRESETS["readable"].replace("{", "<").replace("}", ">"),
        fields=_wrapped(", ".join(LAYOUT_FIELDS) + ".", "# "), missing=MISSING)


def _wrapped(text: str, prefix: str, width: int = 94) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + len(word) + 1 > width - len(prefix):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return f"\n{prefix}".join([*lines, line])


def load_config(path: str | Path | None) -> Config:
    """The configuration in ``path`` over the defaults (the defaults alone for None)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"rules configuration {path} not found; `migrate-fs rules "
                              "--defaults > rules.toml` writes one to start from") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(path) if path else None)


def parse_config(data: dict[str, Any], *, source: str | None = None) -> Config:
    """Validate a parsed TOML document and merge it over the defaults."""
    where = source or "configuration"
    _only(data, {"profile", "migration", "charset", "rules", "required", "problems",
                 "duplicates", "pixel", "output"}, where)
    profile = _choice(data.get("profile", "faithful"), tuple(PROFILES), "profile", where)
    default_required, default_problems = PROFILES[profile]
    duplicates = _table(data, "duplicates", {"conflict", "variants", "content_duplicates",
                                             "legacy_db_files"}, where)
    if duplicates.get("conflict") == "keep_legacy_db" and not duplicates.get("legacy_db_files"):
        raise ConfigError(f"{where}: duplicates.conflict = 'keep_legacy_db' needs "
                          "duplicates.legacy_db_files (a CSV with a 'path' column)")
    migration = _table(data, "migration", {"namespace"}, where)
    charset = _table(data, "charset", {"output", "date_order", "overrides"}, where)
    overrides = charset.get("overrides", {})
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        raise ConfigError(f"{where}: [charset.overrides] maps declared values to character "
                          'set names, e.g. "" = "ISO_IR 100"')
    output = _choice(charset.get("output", "keep"), ("keep", "utf8"), "charset.output", where)
    date_order = _choice(charset.get("date_order", ""), ("", "DMY", "MDY"), "charset.date_order",
                         where)
    rules = {k: r.default for k, r in CONFIGURABLE.items() if r.default}
    for name, value in _table(data, "rules", set(CONFIGURABLE), where).items():
        rules[name] = _choice(value, POLICIES, f"rules.{name}", where)  # type: ignore[assignment]
    required = dict(default_required)
    for name, value in _table(data, "required", set(REQUIRED), where).items():
        required[name] = _required_policy(name, value, where)
    problems = dict(default_problems)
    for name, value in _table(data, "problems", set(PROBLEM_POLICIES), where).items():
        problems[name] = _choice(value, ("quarantine", "warn"), f"problems.{name}",
                                 where)  # type: ignore[assignment]
    pixel = _table(data, "pixel", {"decode_check", "decoder"}, where)
    decoder = str(pixel.get("decoder", ""))
    if decoder and ":" not in decoder:
        raise ConfigError(f"{where}: pixel.decoder = {decoder!r}; give it as 'module:function'")
    decode = _choice(pixel.get("decode_check", "none"), ("none", "first", "all"),
                     "pixel.decode_check", where)
    output_table = _table(data, "output", {"layout"}, where)
    layout = checked_layout(output_table.get("layout", "uids"), f"{where}: output.layout")
    return Config(namespace=str(migration.get("namespace") or DEFAULT_NAMESPACE),
                  profile=profile, charset_output=output, date_order=date_order,
                  overrides={k.strip(): v.strip() for k, v in overrides.items()},
                  rules=rules, required=required, problems=problems, decode_check=decode,
                  decoder=decoder,
                  conflict=_choice(duplicates.get("conflict", "quarantine"),
                                   ("quarantine", "keep_newest_instance", "keep_newest_file",
                                    "keep_legacy_db", "keep_all"), "duplicates.conflict", where),
                  legacy_db_files=str(duplicates.get("legacy_db_files", "")),
                  variants=_choice(duplicates.get("variants", "keep_lossless"),
                                   ("keep_lossless", "conflict"), "duplicates.variants", where),
                  content_duplicates=_choice(duplicates.get("content_duplicates", "migrate"),
                                             ("migrate", "skip", "off"),
                                             "duplicates.content_duplicates", where),
                  layout=layout, source=source)


def checked_layout(value: Any, where: str = "--layout") -> str:
    """A layout setting (a preset name or a pattern), validated: a ConfigError names what is
    wrong (an unknown field and the fields there are, a bad format spec...)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string: a preset ({', '.join(PRESETS)}) or a "
                          "pattern")
    try:
        parse_layout(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value


def _only(data: dict[str, Any], allowed: set[str], where: str, prefix: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {prefix}{unknown[0]!r}; known: "
                          + ", ".join(sorted(allowed)))


def _table(data: dict[str, Any], name: str, allowed: set[str], where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    _only(table, allowed, where, f"{name}.")
    return table


def _choice(value: Any, allowed: tuple[str, ...], key: str, where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {key} = {value!r}; use one of "
                          + ", ".join(repr(a) for a in allowed))
    return str(value)


def _required_policy(name: str, value: Any, where: str) -> str:
    if isinstance(value, str) and value.startswith("value:"):
        return value
    allowed = ("quarantine", "warn", "empty") + (("generate",) if name in GENERATABLE else ())
    if name in TYPE_1 and value == "empty":
        raise ConfigError(f"{where}: required.{name} = 'empty': {name} is type 1 (it must "
                          "have a value); use " + ", ".join(a for a in allowed if a != "empty")
                          + " or 'value:TEXT'")
    return _choice(value, allowed, f"required.{name}", where)


# The configuration line that migrates (or decides) objects quarantined for a code, where a
# setting can; codes not here (not_dicom, truncated...) are data no setting can make whole.
REMEDIES = {
    "missing_attribute": '[required] <attribute> = "warn" (a study or series UID: "generate"); '
                         "the message names the attribute",
    "uid_conflict": '[duplicates] conflict = "keep_newest_instance" (or "keep_newest_file", '
                    '"keep_legacy_db", "keep_all")',
    "missing_character_set": '[charset.overrides] "" = "ISO_IR 100" (what the bytes really are)',
    "invalid_character_set": '[charset.overrides] "<declared value>" = "ISO_IR 100" (what the '
                             "bytes really are)",
    "undecodable_text": '[charset.overrides] "<declared value>" = "<the set the bytes are in>"',
    "correction_conflict": "correct the rows of the corrections file that the message names",
}


def remedy(code: str) -> str | None:
    """The one configuration line that would change what happens to objects with this
    blocking problem code, or None when no setting can."""
    if code in REMEDIES:
        return REMEDIES[code]
    if code in PROBLEM_POLICIES:
        return f'[problems] {code} = "warn"'
    rule = next((name for name, r in CONFIGURABLE.items() if code in r.codes), None)
    return f'[rules] {rule} = "warn"' if rule else None


def describe(config: Config) -> str:
    """The effective rule set as text, for ``migrate-fs rules``."""
    lines = [f"rules configuration: {config.source or 'defaults'}",
             f"profile: {config.profile}",
             f"namespace: {config.namespace}",
             f"charset: output={config.charset_output} date_order={config.date_order or '-'} "
             f"overrides={config.overrides or '{}'}",
             f"duplicates: conflict={config.conflict} variants={config.variants} "
             f"content_duplicates={config.content_duplicates}",
             f"pixel: decode_check={config.decode_check} "
             f"decoder={config.decoder or 'migrate_fs.decode:decode_pixels'}",
             f"output: layout={config.layout} ({config.output_layout().pattern})", "",
             "rule                  policy      codes"]
    for name, (_, codes, text) in CONFIGURABLE.items():
        lines.append(f"{name:<21} {config.rules[name]:<11} {', '.join(codes)}")
        lines.append(f"{'':<21} {text}")
    lines += ["", "required attribute      when missing"]
    lines += [f"{k:<23} {v}" for k, v in config.required.items()]
    lines += ["", "problem                       policy"]
    lines += [f"{k:<29} {v}" for k, v in config.problems.items()]
    return "\n".join(lines)
