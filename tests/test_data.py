"""Tests for reading and validating uploaded JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llada_cot.data import (
    MAX_REPORTED_ERRORS,
    TEST_FORMATS,
    DataFileError,
    LineError,
    TestItem,
    TrainingFile,
    TrainingRecord,
    preview_rows,
    read_test_file,
    read_training_file,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

GOOD_RECORD = {"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"], "answer": "\\boxed{7}"}


def jsonl(*values: object) -> bytes:
    """Encode each value as one JSONL line, writing a str value as the raw line."""
    lines = [value if isinstance(value, str) else json.dumps(value) for value in values]
    return ("\n".join(lines) + "\n").encode("utf-8")


def raised_training_errors(data: bytes, **limits: int) -> DataFileError:
    with pytest.raises(DataFileError) as caught:
        read_training_file(data, **limits)
    return caught.value


def raised_test_errors(data: bytes, **limits: int) -> DataFileError:
    with pytest.raises(DataFileError) as caught:
        read_test_file(data, **limits)
    return caught.value


def record_with(**changes: object) -> dict:
    record = dict(GOOD_RECORD)
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    return record


# --- LineError and DataFileError --------------------------------------------


def test_line_error_str_line_and_field():
    error = LineError(3, "rationales", "expected a list of strings.")
    assert str(error) == "line 3, field 'rationales': expected a list of strings."


def test_line_error_str_line_only():
    assert str(LineError(5, None, "invalid JSON.")) == "line 5: invalid JSON."


def test_line_error_str_whole_file():
    assert str(LineError(None, None, "the file is empty.")) == "the file is empty."


def test_data_file_error_is_value_error():
    assert issubclass(DataFileError, ValueError)


def test_data_file_error_report_lists_errors():
    error = DataFileError([LineError(1, "prompt", "missing."), LineError(2, None, "invalid JSON.")],
                          source_name="train.jsonl")
    report = str(error).splitlines()
    assert report[0] == "Cannot use train.jsonl (2 errors):"
    assert report[1] == "  line 1, field 'prompt': missing."
    assert report[2] == "  line 2: invalid JSON."


# --- Training files: valid input ----------------------------------------------


def test_training_valid_record():
    result = read_training_file(jsonl(GOOD_RECORD))
    assert result.records == [TrainingRecord("Solve 3 + 4", ("3 + 4 = 7",), "\\boxed{7}", 1)]
    assert result.warnings == []


def test_training_empty_rationales_allowed():
    result = read_training_file(jsonl(record_with(rationales=[])))
    assert result.records[0].rationales == ()


def test_training_keeps_text_unstripped():
    result = read_training_file(jsonl(record_with(prompt="  Solve 3 + 4 ")))
    assert result.records[0].prompt == "  Solve 3 + 4 "


def test_training_blank_lines_keep_numbering():
    data = b"\n" + jsonl(GOOD_RECORD) + b"   \n\n" + jsonl(GOOD_RECORD, record_with(prompt=5))
    error = raised_training_errors(data)
    assert [(e.line, e.field) for e in error.errors] == [(6, "prompt")]


def test_training_blank_lines_record_line_numbers():
    data = b"\n\n" + jsonl(GOOD_RECORD) + b"\n" + jsonl(GOOD_RECORD)
    result = read_training_file(data)
    assert [record.line for record in result.records] == [3, 5]


def test_training_utf8_bom_accepted():
    result = read_training_file(b"\xef\xbb\xbf" + jsonl(GOOD_RECORD))
    assert result.records[0].prompt == "Solve 3 + 4"


def test_training_crlf_accepted():
    data = jsonl(GOOD_RECORD, GOOD_RECORD).replace(b"\n", b"\r\n")
    result = read_training_file(data)
    assert len(result.records) == 2
    assert result.records[1].answer == "\\boxed{7}"


def test_training_no_final_newline():
    result = read_training_file(json.dumps(GOOD_RECORD).encode())
    assert len(result.records) == 1


def test_training_non_ascii_text():
    result = read_training_file(jsonl(record_with(prompt="Was ist 15 × 2?")))
    assert result.records[0].prompt == "Was ist 15 × 2?"


# --- Training files: whole-file problems --------------------------------------


def test_training_empty_file():
    error = raised_training_errors(b"")
    assert len(error.errors) == 1
    assert error.errors[0].line is None
    assert "the file is empty" in error.errors[0].message
    assert '{"prompt": "Solve 3 + 4", "rationales": ["3 + 4 = 7"], "answer": "\\\\boxed{7}"}' in str(error)


def test_training_bom_only_file_is_empty():
    error = raised_training_errors(b"\xef\xbb\xbf")
    assert "the file is empty" in str(error)


def test_training_blank_only_file():
    error = raised_training_errors(b"\n  \r\n\t\n")
    assert error.errors[0].line is None
    assert "only blank lines" in error.errors[0].message
    assert '"rationales"' in error.errors[0].message


def test_training_png_rejected():
    error = raised_training_errors(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")
    message = error.errors[0].message
    assert error.errors[0].line is None
    assert "not a text JSONL file" in message
    assert "PNG image" in message


def test_training_zip_rejected():
    error = raised_training_errors(b"PK\x03\x04\x14\x00\x00\x00\x08\x00")
    assert "not a text JSONL file" in str(error)
    assert "ZIP archive" in str(error)


def test_training_nul_bytes_rejected():
    error = raised_training_errors(b'{"prompt": "a"}\n\x00\x01\x02\x03')
    assert "not a text JSONL file" in str(error)
    assert "NUL bytes" in str(error)


def test_training_utf16_rejected():
    error = raised_training_errors("\ufeff".encode("utf-16-le") + json.dumps(GOOD_RECORD).encode("utf-16-le"))
    assert "UTF-16 text" in str(error)
    assert "Save it as UTF-8" in str(error)


def test_training_bytes_over_size_limit():
    data = jsonl(GOOD_RECORD, GOOD_RECORD)
    error = raised_training_errors(data, max_file_bytes=len(data) - 1)
    assert error.errors[0].line is None
    assert f"the file is {len(data)} bytes, over the limit of {len(data) - 1} bytes" in str(error)
    assert "Split it into smaller files" in str(error)


def test_training_path_over_size_limit(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl(*[GOOD_RECORD] * 100))
    with pytest.raises(DataFileError) as caught:
        read_training_file(path, max_file_bytes=1024)
    assert "over the limit of 1.0 KiB" in str(caught.value)
    assert str(path) in str(caught.value)


def test_training_size_limit_inclusive():
    data = jsonl(GOOD_RECORD)
    result = read_training_file(data, max_file_bytes=len(data))
    assert len(result.records) == 1


def test_training_missing_path(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(DataFileError) as caught:
        read_training_file(path)
    assert caught.value.errors[0].line is None
    assert "cannot read the file: No such file or directory" in str(caught.value)


def test_training_directory_path(tmp_path):
    with pytest.raises(DataFileError) as caught:
        read_training_file(tmp_path)
    assert "cannot read the file" in str(caught.value)


def test_training_text_source_rejected():
    with pytest.raises(TypeError, match="Pass the text as bytes"):
        read_training_file(json.dumps(GOOD_RECORD) + "\n")


def test_training_wrong_source_type():
    with pytest.raises(TypeError, match="path or bytes"):
        read_training_file(123)


# --- Training files: line problems --------------------------------------------


def test_training_invalid_utf8():
    data = jsonl(GOOD_RECORD) + b'{"prompt": "caf\xe9"}\n'
    error = raised_training_errors(data)
    assert error.errors[0].line == 2
    assert "invalid UTF-8 at byte offset 15 of the line (byte 0xe9)" in error.errors[0].message
    assert "Save the file as UTF-8" in error.errors[0].message


def test_training_line_not_json():
    data = jsonl(GOOD_RECORD, '{"prompt": "a", "answer" "b"}')
    error = raised_training_errors(data)
    assert error.errors[0].line == 2
    assert "invalid JSON: Expecting ':' delimiter at column 26" in error.errors[0].message


def test_training_single_quotes_not_json():
    error = raised_training_errors(jsonl("{'prompt': 'a'}"))
    assert "Expecting property name enclosed in double quotes at column 2" in str(error)


def test_training_pretty_printed_json():
    data = json.dumps(GOOD_RECORD, indent=2).encode() + b"\n"
    error = raised_training_errors(data)
    assert error.errors[0].line == 1
    assert "Write each record on one line" in error.errors[0].message


def test_training_two_objects_on_line():
    line = json.dumps(GOOD_RECORD) + json.dumps(GOOD_RECORD)
    error = raised_training_errors(jsonl(line))
    assert "Extra data" in str(error)
    assert "Put each object on its own line" in str(error)


def test_training_cr_only_line_ends():
    data = (json.dumps(GOOD_RECORD) + "\r" + json.dumps(GOOD_RECORD)).encode()
    error = raised_training_errors(data)
    assert "carriage return (CR) without a line feed" in str(error)


def test_training_nan_rejected():
    error = raised_training_errors(jsonl('{"prompt": NaN, "rationales": [], "answer": "7"}'))
    assert "NaN is not valid JSON" in str(error)


def test_training_deep_nesting_rejected():
    error = raised_training_errors(jsonl("[" * 100_000 + "]" * 100_000), max_line_bytes=10**6)
    assert error.errors[0].line == 1
    assert "invalid JSON" in error.errors[0].message


def test_training_list_not_object():
    error = raised_training_errors(jsonl(GOOD_RECORD, [GOOD_RECORD]))
    assert error.errors[0].line == 2
    assert "expected a JSON object" in error.errors[0].message
    assert "got a list" in error.errors[0].message
    assert "write each of its elements on its own line" in error.errors[0].message


def test_training_number_not_object():
    error = raised_training_errors(jsonl("42"))
    assert "expected a JSON object" in str(error)
    assert "got a number" in str(error)


def test_training_line_over_size_limit():
    long_record = record_with(prompt="x" * 500)
    error = raised_training_errors(jsonl(GOOD_RECORD, long_record), max_line_bytes=200)
    assert error.errors[0].line == 2
    assert "over the limit of 200 bytes per line" in error.errors[0].message


def test_training_missing_prompt():
    error = raised_training_errors(jsonl(record_with(prompt=None)))
    assert (error.errors[0].line, error.errors[0].field) == (1, "prompt")
    assert 'missing. Add "prompt": "Solve 3 + 4".' in error.errors[0].message


def test_training_missing_rationales():
    error = raised_training_errors(jsonl(record_with(rationales=None)))
    assert error.errors[0].field == "rationales"
    assert "Use [] for a record without steps" in error.errors[0].message


def test_training_missing_answer():
    error = raised_training_errors(jsonl(record_with(answer=None)))
    assert error.errors[0].field == "answer"
    assert 'Add "answer": "\\\\boxed{7}"' in error.errors[0].message


def test_training_missing_field_rename_hint():
    error = raised_training_errors(jsonl({"question": "Solve 3 + 4", "rationales": [], "answer": "7"}))
    assert error.errors[0].field == "prompt"
    assert "The line has 'question', so it may only need renaming to 'prompt'" in error.errors[0].message


def test_training_missing_field_case_hint():
    error = raised_training_errors(jsonl({"Prompt": "Solve 3 + 4", "rationales": [], "answer": "7"}))
    assert "The line has 'Prompt'" in str(error)


def test_training_rationales_as_string():
    error = raised_training_errors(jsonl(record_with(rationales="3 + 4 = 7")))
    assert str(error.errors[0]) == (
        "line 1, field 'rationales': expected a list of strings, got a string. "
        'Write it as ["step 1", "step 2"], or [] for a record without steps.')


def test_training_rationale_not_string():
    error = raised_training_errors(jsonl(record_with(rationales=["3 + 4 = 7", 7])))
    assert error.errors[0].field == "rationales[1]"
    assert "expected a string, got a number" in error.errors[0].message


def test_training_rationale_empty():
    error = raised_training_errors(jsonl(record_with(rationales=["3 + 4 = 7", "  "])))
    assert error.errors[0].field == "rationales[1]"
    assert "the step is empty" in error.errors[0].message


def test_training_prompt_number():
    error = raised_training_errors(jsonl(record_with(prompt=34)))
    assert error.errors[0].field == "prompt"
    assert "expected a string, got a number" in error.errors[0].message
    assert "Write it in double quotes" in error.errors[0].message


def test_training_prompt_boolean():
    error = raised_training_errors(jsonl(record_with(prompt=True)))
    assert "got a boolean" in str(error)


def test_training_prompt_empty():
    error = raised_training_errors(jsonl(record_with(prompt="   ")))
    assert (error.errors[0].line, error.errors[0].field) == (1, "prompt")
    assert "the text is empty" in error.errors[0].message


def test_training_answer_empty():
    error = raised_training_errors(jsonl(record_with(answer="")))
    assert error.errors[0].field == "answer"


def test_training_answer_number():
    error = raised_training_errors(jsonl(record_with(answer=7)))
    assert error.errors[0].field == "answer"
    assert "got a number" in error.errors[0].message


def test_training_collects_all_errors():
    data = jsonl(record_with(prompt=1), GOOD_RECORD, "not json", record_with(answer=None, rationales="x"))
    error = raised_training_errors(data)
    assert [(e.line, e.field) for e in error.errors] == [(1, "prompt"), (3, None), (4, "rationales"), (4, "answer")]
    assert error.error_count == 4


def test_training_extra_fields_warning():
    data = jsonl(GOOD_RECORD, record_with(id=1, source="gen"), record_with(id=2))
    result = read_training_file(data)
    assert len(result.records) == 3
    assert len(result.warnings) == 1
    assert "'id', 'source'" in result.warnings[0]
    assert "in 2 records (first on line 2)" in result.warnings[0]


def test_training_unboxed_answers_warning():
    data = jsonl(GOOD_RECORD, record_with(answer="7"), record_with(answer="seven"), GOOD_RECORD)
    result = read_training_file(data)
    assert len(result.records) == 4  # a warning, not an error
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("2 answers have no \\boxed{} (first on line 2).")
    assert '"\\\\boxed{7}"' in result.warnings[0]  # the fix, written as JSON


def test_training_boxed_answers_no_warning():
    data = jsonl(GOOD_RECORD, record_with(answer="The answer is \\boxed{7}."), record_with(answer="\\fbox{7}"))
    assert read_training_file(data).warnings == []


def test_training_too_many_errors_reported():
    n_errors = MAX_REPORTED_ERRORS + 7
    error = raised_training_errors(jsonl(*["not json"] * n_errors))
    assert len(error.errors) == MAX_REPORTED_ERRORS
    assert error.error_count == n_errors
    assert f"({n_errors} errors)" in str(error)
    assert "... and 7 more errors not listed" in str(error)


def test_training_report_names_uploaded_file():
    error = raised_training_errors(jsonl("not json"))
    assert str(error).startswith("Cannot use the uploaded file (1 error):")


# --- Training files: sources and n_items --------------------------------------


def test_training_bytes_and_path_match(tmp_path):
    data = b"\xef\xbb\xbf" + jsonl(GOOD_RECORD, record_with(rationales=[], extra=1)).replace(b"\n", b"\r\n")
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    assert read_training_file(data) == read_training_file(path)
    assert read_training_file(data) == read_training_file(str(path))


def test_training_bytes_and_path_same_errors(tmp_path):
    data = jsonl(GOOD_RECORD, "[1]", record_with(prompt=""))
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    from_bytes = raised_training_errors(data)
    with pytest.raises(DataFileError) as from_path:
        read_training_file(path)
    assert from_bytes.errors == from_path.value.errors


def test_n_items_stepwise():
    data = jsonl(record_with(rationales=[]), record_with(rationales=["a", "b", "c"]))
    assert read_training_file(data).n_items("stepwise") == 1 + 4


def test_n_items_whole():
    data = jsonl(record_with(rationales=[]), record_with(rationales=["a", "b", "c"]))
    assert read_training_file(data).n_items("whole") == 2


def test_n_items_invalid_mode():
    training_file = TrainingFile(records=[], warnings=[])
    with pytest.raises(ValueError, match="'stepwise', 'whole'"):
        training_file.n_items("tokens")


# --- Test files ---------------------------------------------------------------


def test_test_formats_constant():
    assert TEST_FORMATS == ("seed", "gsm8k", "math")


def test_seed_format():
    result = read_test_file(jsonl({"prompt": "What is 15 × 2?", "answer": "30"}))
    assert result.format == "seed"
    assert result.items == [TestItem("What is 15 × 2?", "30", 1)]


def test_seed_numeric_answer():
    result = read_test_file(jsonl({"prompt": "What is 15 × 2?", "answer": 30},
                                  {"prompt": "Half of 5?", "answer": 2.5}))
    assert [item.answer for item in result.items] == ["30", "2.5"]


def test_seed_boolean_answer_rejected():
    error = raised_test_errors(jsonl({"prompt": "Is 2 even?", "answer": True}))
    assert error.errors[0].field == "answer"
    assert "expected a string or a number, got a boolean" in error.errors[0].message


def test_gsm8k_format():
    answer = "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"
    result = read_test_file(jsonl({"question": "Tom has 3 apples and buys 4. How many?", "answer": answer}))
    assert result.format == "gsm8k"
    assert result.items[0].answer == answer


def test_gsm8k_without_marker():
    data = jsonl({"question": "q1", "answer": "7\n#### 7"}, {"question": "q2", "answer": "The answer is 7"})
    error = raised_test_errors(data)
    assert (error.errors[0].line, error.errors[0].field) == (2, "answer")
    assert "no '####' marker" in error.errors[0].message
    assert "End it with '#### ' and the final number" in error.errors[0].message


def test_gsm8k_nothing_after_marker():
    error = raised_test_errors(jsonl({"question": "q", "answer": "3 + 4 = 7\n####  "}))
    assert "nothing follows the last '####'" in str(error)


def test_math_format():
    solution = "We add: $3 + 4 = \\boxed{7}$."
    result = read_test_file(jsonl({"problem": "Compute $3 + 4$.", "solution": solution, "level": "Level 1"}))
    assert result.format == "math"
    assert result.items[0].answer == solution


def test_math_without_boxed():
    error = raised_test_errors(jsonl({"problem": "Compute $3 + 4$.", "solution": "It is 7."}))
    assert (error.errors[0].line, error.errors[0].field) == (1, "solution")
    assert "no \\boxed{...}" in error.errors[0].message


def test_test_unknown_keys():
    error = raised_test_errors(jsonl({"input": "What is 2 + 2?", "target": "4"}))
    message = error.errors[0].message
    assert error.errors[0].line == 1
    assert "the keys ('input', 'target') match no test format" in message
    assert 'seed ("prompt" and "answer")' in message
    assert 'gsm8k ("question" and "answer")' in message
    assert 'math ("problem" and "solution")' in message


def test_test_partial_keys_hint():
    error = raised_test_errors(jsonl({"problem": "Compute $3 + 4$."}))
    assert "The line has 'problem' but no 'solution'" in str(error)


def test_test_detects_after_bad_first_line():
    error = raised_test_errors(jsonl({"promt": "typo", "answer": "1"}, {"prompt": "ok", "answer": "2"}))
    assert [e.line for e in error.errors] == [1]


def test_test_mixed_formats():
    data = jsonl({"prompt": "p", "answer": "1"}, {"prompt": "p", "answer": "2"},
                 {"question": "q", "answer": "3\n#### 3"}, {"problem": "m", "solution": "\\boxed{4}"})
    error = raised_test_errors(data)
    assert [e.line for e in error.errors] == [3, 4]
    assert "uses the gsm8k format" in error.errors[0].message
    assert "detected as seed on line 1" in error.errors[0].message
    assert "uses the math format" in error.errors[1].message


def test_test_missing_field_after_detection():
    error = raised_test_errors(jsonl({"question": "q", "answer": "3\n#### 3"}, {"question": "q2"}))
    assert (error.errors[0].line, error.errors[0].field) == (2, "answer")
    assert "missing" in error.errors[0].message


def test_test_extra_fields_warning():
    data = jsonl({"prompt": "p", "answer": "1", "id": 1}, {"prompt": "p", "answer": "2", "id": 2})
    result = read_test_file(data)
    assert len(result.warnings) == 1
    assert "'id' in 2 records (first on line 1)" in result.warnings[0]
    assert "The seed format uses only 'prompt' and 'answer'" in result.warnings[0]


def test_test_empty_file():
    error = raised_test_errors(b"\n\n")
    assert error.errors[0].line is None
    assert "only blank lines" in error.errors[0].message
    assert '"question"' in error.errors[0].message


def test_test_png_rejected():
    error = raised_test_errors(b"\x89PNG\r\n\x1a\n")
    assert "not a text JSONL file" in str(error)


def test_test_bytes_and_path_match(tmp_path):
    data = jsonl({"problem": "m", "solution": "\\boxed{4}", "type": "Algebra"})
    path = tmp_path / "test.jsonl"
    path.write_bytes(data)
    assert read_test_file(data) == read_test_file(path)


# --- Previews -----------------------------------------------------------------


def test_preview_training_rows():
    data = jsonl(*[record_with(rationales=["a", "b"])] * 3)
    rows = preview_rows(read_training_file(data).records, limit=2)
    assert rows == [{"line": 1, "prompt": "Solve 3 + 4", "n_rationales": 2, "answer": "\\boxed{7}"},
                    {"line": 2, "prompt": "Solve 3 + 4", "n_rationales": 2, "answer": "\\boxed{7}"}]


def test_preview_test_file():
    rows = preview_rows(read_test_file(jsonl({"prompt": "p", "answer": 3})))
    assert rows == [{"line": 1, "prompt": "p", "answer": "3"}]


def test_preview_shortens_long_text():
    rows = preview_rows([TestItem("x" * 500, "1", 1)])
    assert len(rows[0]["prompt"]) == 120
    assert rows[0]["prompt"].endswith("…")


def test_preview_negative_limit():
    with pytest.raises(ValueError, match="limit"):
        preview_rows([], limit=-1)


def test_preview_wrong_entry_type():
    with pytest.raises(TypeError, match="TrainingRecord or TestItem"):
        preview_rows([{"prompt": "p"}])


# --- Bundled datasets ---------------------------------------------------------


def test_bundled_train_file():
    result = read_training_file(REPO_ROOT / "datasets" / "train.jsonl")
    assert len(result.records) == 10000
    assert result.warnings == []


def test_bundled_test_file():
    result = read_test_file(REPO_ROOT / "datasets" / "test.jsonl")
    assert result.format == "seed"
    assert len(result.items) >= 200
    assert result.warnings == []


def test_test_file_given_for_training_gets_one_error():
    data = b'{"prompt": "What is 2 + 2?", "answer": "4"}\n{"prompt": "What is 3 + 3?", "answer": "6"}\n'
    with pytest.raises(DataFileError) as caught:
        read_training_file(data)
    assert caught.value.error_count == 1
    assert "looks like a test file" in str(caught.value)
    assert "missing on all 2 lines" in str(caught.value)
