"""Read and validate uploaded JSONL training and test files.

Each non-blank line of a JSONL file is one JSON object. The readers accept a
UTF-8 byte order mark, CRLF line ends and blank lines, which are skipped but
still counted so that line numbers match the user's editor. Every other problem
becomes a `LineError` with the line number, the field, what is wrong and how to
fix it. A reader collects the errors of the whole file and raises one
`DataFileError`, so the user can fix all of them before uploading again.

Uses only the standard library, so the web page can validate an upload without
loading torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llada_cot.answers import extract_boxed

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_LINE_BYTES = 1 * 1024 * 1024
MAX_REPORTED_ERRORS = 20

# Same values as llada_cot.training.MODES, repeated so that this module needs no torch.
TRAINING_MODES = ("stepwise", "whole")

TEST_FORMATS = ("seed", "gsm8k", "math")

TRAINING_EXAMPLE = '{"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"], "answer": "\\\\boxed{7}"}'

_UTF8_BOM = b"\xef\xbb\xbf"

# Leading bytes of file types that users upload by mistake.
_BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx or .docx file)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"\xd0\xcf\x11\xe0", "a Microsoft Office file"),
)

# UTF-32 before UTF-16 because the UTF-32 LE mark starts with the UTF-16 LE mark.
_OTHER_UNICODE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)

# Number of leading bytes searched for NUL, which never occurs in UTF-8 JSON text.
_BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class LineError:
    """One problem in a data file, with the fix in `message`."""

    line: int | None  # 1-based line number, None for whole-file problems
    field: str | None
    message: str

    def __str__(self) -> str:
        location = []
        if self.line is not None:
            location.append(f"line {self.line}")
        if self.field is not None:
            location.append(f"field '{self.field}'")
        if not location:
            return self.message
        return f"{', '.join(location)}: {self.message}"


class DataFileError(ValueError):
    """Raised when a file cannot be used.

    `errors` lists at most `MAX_REPORTED_ERRORS` errors in file order, and
    `error_count` is the number found in the whole file. `str(error)` is a
    multi-line report for the user.
    """

    def __init__(self, errors: Sequence[LineError], *, error_count: int | None = None,
                 source_name: str | None = None):
        self.errors: list[LineError] = list(errors)
        self.error_count = len(self.errors) if error_count is None else error_count
        self.source_name = source_name
        super().__init__(self._format_report())

    def _format_report(self) -> str:
        name = self.source_name or "the file"
        noun = "error" if self.error_count == 1 else "errors"
        lines = [f"Cannot use {name} ({self.error_count} {noun}):"]
        lines.extend(f"  {error}" for error in self.errors)
        n_unlisted = self.error_count - len(self.errors)
        if n_unlisted > 0:
            lines.append(f"  ... and {n_unlisted} more {'error' if n_unlisted == 1 else 'errors'} "
                         "not listed. Fix the listed ones and check the file again.")
        return "\n".join(lines)


@dataclass(frozen=True)
class TrainingRecord:
    prompt: str
    rationales: tuple[str, ...]
    answer: str
    line: int


@dataclass(frozen=True)
class TrainingFile:
    records: list[TrainingRecord]
    warnings: list[str]

    def n_items(self, mode: str) -> int:
        """Return the number of training items that `mode` makes from the records.

        "stepwise" makes k + 1 items from a record with k rationales, and
        "whole" makes one item per record.
        """
        if mode == "stepwise":
            return sum(len(record.rationales) + 1 for record in self.records)
        if mode == "whole":
            return len(self.records)
        valid = ", ".join(repr(name) for name in TRAINING_MODES)
        raise ValueError(f"unknown training mode {mode!r}. Use one of {valid}.")


@dataclass(frozen=True)
class TestItem:
    __test__ = False  # keeps pytest from collecting this class as a test

    prompt: str
    answer: str  # raw gold text: the seed "answer", the gsm8k "answer" with '#### N', or the math "solution"
    line: int


@dataclass(frozen=True)
class TestFile:
    __test__ = False

    format: str  # one of TEST_FORMATS
    items: list[TestItem]
    warnings: list[str]


@dataclass(frozen=True)
class _TestFormat:
    name: str
    prompt_key: str
    answer_key: str
    example_prompt: str  # JSON text of an example prompt value, quotes included
    example: str  # a whole example line

    @property
    def keys(self) -> tuple[str, str]:
        return (self.prompt_key, self.answer_key)

    def describe(self, joiner: str = " and ") -> str:
        return f'{self.name} ("{self.prompt_key}"{joiner}"{self.answer_key}")'


_TEST_FORMAT_SPECS = (
    _TestFormat("seed", "prompt", "answer", '"What is 15 × 2?"',
                '{"prompt": "What is 15 × 2?", "answer": "30"}'),
    _TestFormat("gsm8k", "question", "answer", '"Tom has 3 apples and buys 4 more. How many?"',
                '{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\\n#### 7"}'),
    _TestFormat("math", "problem", "solution", '"Compute $3 + 4$."',
                '{"problem": "Compute $3 + 4$.", "solution": "$3 + 4 = \\\\boxed{7}$"}'),
)


def describe_test_format(name: str, joiner: str = " and ") -> str:
    """Return a test format's name with the two keys it reads, such as 'seed ("prompt" and "answer")'.

    `joiner` goes between the two keys, so a page can write them in its reader's language.
    """
    for spec in _TEST_FORMAT_SPECS:
        if spec.name == name:
            return spec.describe(joiner)
    raise ValueError(f"Unknown test format {name!r}; use one of {', '.join(TEST_FORMATS)}.")


class _ErrorCollector:
    """Collector that counts every error but keeps only the first `MAX_REPORTED_ERRORS`.

    A 50 MiB file of short bad lines has millions of errors, and keeping them
    all would cost far more memory than the file itself.
    """

    def __init__(self) -> None:
        self.listed: list[LineError] = []
        self.count = 0

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_REPORTED_ERRORS:
            self.listed.append(LineError(line, field, message))

    def raise_if_any(self, source_name: str) -> None:
        if self.count:
            raise DataFileError(self.listed, error_count=self.count, source_name=source_name)


def _unboxed_warnings(lines: list[int]) -> list[str]:
    """Return a warning about training answers that lack \\boxed{}, since the model learns to write them unboxed."""
    if not lines:
        return []
    verb = "has" if len(lines) == 1 else "have"
    return [f"{_plural(len(lines), 'answer')} {verb} no \\boxed{{}} (first on line {lines[0]}). The model learns "
            "to write the answer as given, and evaluation reads the last \\boxed{} of an output, so write "
            "\"\\\\boxed{7}\" instead of \"7\"."]


class _ExtraFieldCounter:
    """Counter of records with fields that the reader ignores, reported as one warning."""

    def __init__(self, used_for: str) -> None:
        self.used_for = used_for
        self.n_records = 0
        self.first_line: int | None = None
        self.names: dict[str, int] = {}

    def add(self, line: int, record: dict, known: Iterable[str]) -> None:
        extra = [key for key in record if key not in known]
        if not extra:
            return
        self.n_records += 1
        if self.first_line is None:
            self.first_line = line
        for key in extra:
            self.names[key] = self.names.get(key, 0) + 1

    def warnings(self) -> list[str]:
        if not self.n_records:
            return []
        names = ", ".join(f"'{name}'" for name in self.names)
        return [f"Ignored extra fields {names} in {_plural(self.n_records, 'record')} "
                f"(first on line {self.first_line}). {self.used_for}."]


# --- Reading the source -----------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _format_size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return _plural(n_bytes, "byte")
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / (1024 * 1024):.1f} MiB"


def _format_size_and_limit(size: int, limit: int) -> tuple[str, str]:
    """Return `size` and `limit` as text, in bytes when their rounded forms would read the same."""
    size_text, limit_text = _format_size(size), _format_size(limit)
    if size_text == limit_text:
        return _plural(size, "byte"), _plural(limit, "byte")
    return size_text, limit_text


def _file_too_large(size: int, max_file_bytes: int, source_name: str) -> DataFileError:
    size_text, limit_text = _format_size_and_limit(size, max_file_bytes)
    message = (f"the file is {size_text}, over the limit of {limit_text}. "
               "Split it into smaller files.")
    return DataFileError([LineError(None, None, message)], source_name=source_name)


def _read_source(source: str | os.PathLike | bytes, max_file_bytes: int) -> tuple[bytes, str]:
    """Return the bytes of `source` and a name for reports, checking the size before reading."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = source.nbytes if isinstance(source, memoryview) else len(source)
        if size > max_file_bytes:
            raise _file_too_large(size, max_file_bytes, "the uploaded file")
        return bytes(source), "the uploaded file"

    if isinstance(source, str):
        stripped = source.strip()
        looks_like_jsonl = "\n" in source or (stripped.startswith("{") and stripped.endswith("}"))
        if looks_like_jsonl:
            raise TypeError("source looks like JSONL text, not a path. Pass the text as bytes "
                            "(text.encode('utf-8')) or pass the path of a file.")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or bytes, got {type(source).__name__}")

    path = Path(source)
    source_name = str(path)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_file_bytes:
                raise _file_too_large(size, max_file_bytes, source_name)
            # Reading one byte past the limit catches files that grow after the
            # size check, and pipes, whose reported size is 0.
            data = handle.read(max_file_bytes + 1)
    except OSError as error:
        message = f"cannot read the file: {error.strerror or error}. Check the path and its permissions."
        raise DataFileError([LineError(None, None, message)], source_name=source_name) from error
    if len(data) > max_file_bytes:
        raise _file_too_large(len(data), max_file_bytes, source_name)
    return data, source_name


def _describe_binary(data: bytes) -> str | None:
    """Return what kind of non-text file `data` looks like, or None when it may be text."""
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            return kind
    for bom, encoding in _OTHER_UNICODE_BOMS:
        if data.startswith(bom):
            return f"{encoding} text"
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        return "binary data (it contains NUL bytes, as UTF-16 text and binary files do)"
    return None


def _reject_binary(data: bytes, expected_line: str, source_name: str) -> None:
    kind = _describe_binary(data)
    if kind is None:
        return
    if kind.endswith(" text"):
        fix = "Save it as UTF-8 text with one JSON object per line"
    else:
        fix = "Upload a UTF-8 text file with one JSON object per line"
    message = f"the file is not a text JSONL file: it looks like {kind}. {fix}, for example {expected_line}"
    raise DataFileError([LineError(None, None, message)], source_name=source_name)


# --- Parsing lines ----------------------------------------------------------


def _reject_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _json_type_name(value: object) -> str:
    # bool before int and float, because bool is a subclass of int.
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


def _json_error_message(error: json.JSONDecodeError, text: str, raw: bytes) -> str:
    message = f"invalid JSON: {error.msg} at column {error.colno}."
    # A CR alone is checked first, because it also causes "Extra data" when it separates two records.
    if b"\r" in raw:
        return message + (" The line contains a carriage return (CR) without a line feed. "
                          "Save the file with LF or CRLF line ends.")
    if error.msg.startswith("Extra data"):
        return message + (" The line continues after the first JSON value ends. "
                          "Put each object on its own line and remove anything after it.")
    if error.pos >= len(text.rstrip()):
        return message + (" The line ends before the JSON value is complete. Write each record on "
                          "one line, because JSON spread over several lines is not JSONL.")
    return message + " Check the quotes, commas and brackets near that column."


def _parse_json_lines(data: bytes, max_line_bytes: int, example: str,
                      errors: _ErrorCollector) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each valid line and report the others to `errors`."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    for line_number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > max_line_bytes:
            size_text, limit_text = _format_size_and_limit(len(raw), max_line_bytes)
            errors.add(line_number, None,
                       f"the line is {size_text}, over the limit of {limit_text} "
                       "per line. Shorten the record, or check that the file has one record per line.")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = raw[error.start:error.start + 1].hex()
            errors.add(line_number, None,
                       f"invalid UTF-8 at byte offset {error.start} of the line (byte 0x{bad}). "
                       "Save the file as UTF-8, because it may be in another encoding such as Windows-1252.")
            continue
        if not text.strip():
            continue

        try:
            value = json.loads(text, parse_constant=_reject_json_constant)
        except json.JSONDecodeError as error:
            errors.add(line_number, None, _json_error_message(error, text, raw))
            continue
        except RecursionError:
            errors.add(line_number, None, "invalid JSON: the value is nested too deeply. "
                       f"Write a flat object like {example}")
            continue
        except ValueError as error:
            # NaN and Infinity, and integers with too many digits for Python to parse.
            errors.add(line_number, None, f"invalid JSON: {error}. Write numbers as finite decimal values.")
            continue

        if not isinstance(value, dict):
            message = f"expected a JSON object like {example}, got {_json_type_name(value)}."
            if isinstance(value, list):
                message += " If the file is one JSON array, write each of its elements on its own line instead."
            errors.add(line_number, None, message)
            continue
        yield line_number, value


def _reject_empty(n_lines: int, data: bytes, expected: str, source_name: str) -> None:
    if n_lines:
        return
    if data.removeprefix(_UTF8_BOM):
        problem = "the file contains only blank lines"
    else:
        problem = "the file is empty"
    message = f"{problem}, so it has no records. Write one JSON object per line, for example {expected}"
    raise DataFileError([LineError(None, None, message)], source_name=source_name)


# --- Field checks -----------------------------------------------------------

# Field names that users often write instead of the expected ones.
_FIELD_ALIASES = {
    "prompt": ("question", "problem", "input", "instruction", "query"),
    "rationales": ("rationale", "steps", "reasoning", "cot", "chain_of_thought"),
    "answer": ("solution", "output", "response", "target", "final_answer"),
}


def _missing_field_message(record: dict, field: str, example_value: str) -> str:
    message = f"missing. Add \"{field}\": {example_value}."
    lowered = {key.lower(): key for key in record}
    candidates = (field, *_FIELD_ALIASES.get(field, ()))
    for candidate in candidates:
        found = lowered.get(candidate)
        if found is not None:
            return message + f" The line has '{found}', so it may only need renaming to '{field}'."
    return message


def _check_text(record: dict, field: str, line: int, errors: _ErrorCollector, example_value: str) -> str | None:
    """Return the field as a non-blank string, or report why it is not one."""
    if field not in record:
        errors.add(line, field, _missing_field_message(record, field, example_value))
        return None
    value = record[field]
    if not isinstance(value, str):
        errors.add(line, field, f"expected a string, got {_json_type_name(value)}. "
                   f"Write it in double quotes, for example {example_value}.")
        return None
    if not value.strip():
        errors.add(line, field, f"the text is empty. Write the {field} text, for example {example_value}.")
        return None
    return value


def _check_rationales(record: dict, line: int, errors: _ErrorCollector) -> tuple[str, ...] | None:
    example = '["3 + 4 = 7"]'
    if "rationales" not in record:
        errors.add(line, "rationales", _missing_field_message(record, "rationales", example)
                   + " Use [] for a record without steps.")
        return None
    value = record["rationales"]
    if not isinstance(value, list):
        errors.add(line, "rationales", f"expected a list of strings, got {_json_type_name(value)}. "
                   'Write it as ["step 1", "step 2"], or [] for a record without steps.')
        return None
    valid = True
    for index, step in enumerate(value):
        field = f"rationales[{index}]"
        if not isinstance(step, str):
            errors.add(line, field, f"expected a string, got {_json_type_name(step)}. "
                       "Write each step as text in double quotes, for example \"3 + 4 = 7\".")
            valid = False
        elif not step.strip():
            errors.add(line, field, "the step is empty. Remove it or write the step text.")
            valid = False
    return tuple(value) if valid else None


# --- Training files ---------------------------------------------------------

_TRAINING_FIELDS = ("prompt", "rationales", "answer")


def read_training_file(source: str | os.PathLike | bytes, *, max_file_bytes: int = MAX_FILE_BYTES,
                       max_line_bytes: int = MAX_LINE_BYTES) -> TrainingFile:
    """Read and validate a training JSONL file from a path or the bytes of an upload.

    Each line is {"prompt": str, "rationales": [str, ...], "answer": str}. The
    prompt, the answer and every rationale must be non-blank, but the list of
    rationales may be empty. Extra fields are ignored and reported once in
    `warnings`. Raises DataFileError listing the problems of the whole file.
    """
    data, source_name = _read_source(source, max_file_bytes)
    _reject_binary(data, TRAINING_EXAMPLE, source_name)

    errors = _ErrorCollector()
    extra_fields = _ExtraFieldCounter("Training uses only 'prompt', 'rationales' and 'answer'")
    records: list[TrainingRecord] = []
    n_objects = 0
    n_without_rationales = 0
    unboxed_lines: list[int] = []
    for line, record in _parse_json_lines(data, max_line_bytes, TRAINING_EXAMPLE, errors):
        n_objects += 1
        n_without_rationales += "rationales" not in record
        extra_fields.add(line, record, _TRAINING_FIELDS)
        prompt = _check_text(record, "prompt", line, errors, '"Solve 3 + 4"')
        rationales = _check_rationales(record, line, errors)
        answer = _check_text(record, "answer", line, errors, '"\\\\boxed{7}"')
        if prompt is not None and rationales is not None and answer is not None:
            records.append(TrainingRecord(prompt, rationales, answer, line))
            if extract_boxed(answer) is None:
                unboxed_lines.append(line)

    if n_objects > 1 and n_without_rationales == n_objects and errors.count == n_objects:
        # One clear reason instead of the same missing field on every line.
        raise DataFileError([LineError(None, "rationales", (
            f"missing on all {n_objects} lines, so this looks like a test file (prompt and answer only). "
            "Training needs the step-by-step solution: add \"rationales\": [\"3 + 4 = 7\"] to each line, or [] "
            "for a record without steps. Evaluate a test file in the Evaluate tab or with solve."))],
            source_name=source_name)
    errors.raise_if_any(source_name)
    _reject_empty(n_objects, data, TRAINING_EXAMPLE, source_name)
    return TrainingFile(records, extra_fields.warnings() + _unboxed_warnings(unboxed_lines))


# --- Test files -------------------------------------------------------------


def _matching_format(record: dict) -> _TestFormat | None:
    """Return the first format whose keys are all in `record`, in TEST_FORMATS order."""
    for spec in _TEST_FORMAT_SPECS:
        if all(key in record for key in spec.keys):
            return spec
    return None


def _unknown_format_message(record: dict) -> str:
    keys = ", ".join(f"'{key}'" for key in record) or "none"
    *first, last = [spec.describe() for spec in _TEST_FORMAT_SPECS]
    accepted = f"{', '.join(first)} or {last}"
    message = f"the keys ({keys}) match no test format. Use one of these key sets: {accepted}."
    for spec in _TEST_FORMAT_SPECS:
        if spec.prompt_key in record:
            message += (f" The line has '{spec.prompt_key}' but no '{spec.answer_key}', "
                        f"so for {spec.name} add it, for example {spec.example}")
            break
    return message


def _check_test_item(spec: _TestFormat, record: dict, line: int, errors: _ErrorCollector) -> TestItem | None:
    prompt = _check_text(record, spec.prompt_key, line, errors, spec.example_prompt)

    answer = None
    value = record.get(spec.answer_key)
    if spec.answer_key not in record:
        errors.add(line, spec.answer_key,
                   f"missing. Add the gold answer, for example {spec.example}")
    elif spec.name == "seed" and isinstance(value, (int, float)) and not isinstance(value, bool):
        answer = str(value)
    elif not isinstance(value, str):
        allowed = "a string or a number" if spec.name == "seed" else "a string"
        errors.add(line, spec.answer_key, f"expected {allowed}, got {_json_type_name(value)}. "
                   f"Write it like {spec.example}")
    elif not value.strip():
        errors.add(line, spec.answer_key, f"the text is empty. Write the gold answer, for example {spec.example}")
    elif spec.name == "gsm8k" and "####" not in value:
        errors.add(line, spec.answer_key, "the gsm8k answer has no '####' marker. "
                   "End it with '#### ' and the final number, for example \"3 + 4 = 7\\n#### 7\".")
    elif spec.name == "gsm8k" and not value.rsplit("####", 1)[1].strip():
        errors.add(line, spec.answer_key, "nothing follows the last '####'. "
                   "Write the final number after it, for example \"#### 7\".")
    elif spec.name == "math" and "\\boxed" not in value:
        errors.add(line, spec.answer_key, "the math solution has no \\boxed{...}. "
                   "Put the final answer in \\boxed{}, for example \"$3 + 4 = \\\\boxed{7}$\".")
    else:
        answer = value

    if prompt is None or answer is None:
        return None
    return TestItem(prompt, answer, line)


def read_test_file(source: str | os.PathLike | bytes, *, max_file_bytes: int = MAX_FILE_BYTES,
                   max_line_bytes: int = MAX_LINE_BYTES) -> TestFile:
    """Read and validate a test JSONL file from a path or the bytes of an upload.

    The format is detected from the first object whose keys match one of
    TEST_FORMATS, and every later line must use that format:

    * seed: {"prompt": str, "answer": str or number}, numbers kept as str(value);
    * gsm8k: {"question": str, "answer": str containing '####'};
    * math: {"problem": str, "solution": str containing '\\boxed'}.

    Gold answers keep their raw text because the evaluation parses them.
    Raises DataFileError listing the problems of the whole file.
    """
    data, source_name = _read_source(source, max_file_bytes)
    expected = " or ".join(spec.example for spec in _TEST_FORMAT_SPECS)
    _reject_binary(data, expected, source_name)

    errors = _ErrorCollector()
    extra_fields: _ExtraFieldCounter | None = None
    detected: _TestFormat | None = None
    detected_line = 0
    items: list[TestItem] = []
    n_objects = 0
    for line, record in _parse_json_lines(data, max_line_bytes, expected, errors):
        n_objects += 1
        if detected is None:
            detected = _matching_format(record)
            if detected is None:
                errors.add(line, None, _unknown_format_message(record))
                continue
            detected_line = line
            extra_fields = _ExtraFieldCounter(f"The {detected.name} format uses only "
                                              f"'{detected.prompt_key}' and '{detected.answer_key}'")
        elif not all(key in record for key in detected.keys):
            # A line with the keys of another format is reported as mixed. A line
            # with the keys of no format falls through to the missing-field checks.
            other = _matching_format(record)
            if other is not None:
                errors.add(line, None,
                           f"the line uses the {other.name} format, but the file was detected as "
                           f"{detected.name} on line {detected_line}. Use one format per file, "
                           f"so write this line like {detected.example}")
                continue

        extra_fields.add(line, record, detected.keys)
        item = _check_test_item(detected, record, line, errors)
        if item is not None:
            items.append(item)

    errors.raise_if_any(source_name)
    _reject_empty(n_objects, data, expected, source_name)
    return TestFile(detected.name, items, extra_fields.warnings())


# --- Previews ---------------------------------------------------------------

_PREVIEW_TEXT_CHARS = 120


def _shorten(text: str, limit: int = _PREVIEW_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def preview_rows(records_or_items: TrainingFile | TestFile | Sequence[TrainingRecord | TestItem],
                 limit: int = 20) -> list[dict]:
    """Return the first `limit` records or test items as small dicts for a table.

    Training rows have line, prompt, n_rationales and answer. Test rows have
    line, prompt and answer. Texts longer than 120 characters are cut and end
    with '…'.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if isinstance(records_or_items, TrainingFile):
        records_or_items = records_or_items.records
    elif isinstance(records_or_items, TestFile):
        records_or_items = records_or_items.items

    rows = []
    for entry in list(records_or_items)[:limit]:
        if isinstance(entry, TrainingRecord):
            rows.append({"line": entry.line, "prompt": _shorten(entry.prompt),
                         "n_rationales": len(entry.rationales), "answer": _shorten(entry.answer)})
        elif isinstance(entry, TestItem):
            rows.append({"line": entry.line, "prompt": _shorten(entry.prompt), "answer": _shorten(entry.answer)})
        else:
            raise TypeError(f"expected TrainingRecord or TestItem entries, got {type(entry).__name__}")
    return rows
