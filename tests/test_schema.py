"""The one JSONL reader: rows back, a bad line named by file and line, torn lines skipped on request."""

from __future__ import annotations

import pytest

from swirl_lite.schema import numbered_jsonl, read_jsonl, write_jsonl


def test_read_jsonl_round_trip_skips_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}, {"b": "é"}])
    path.write_text(path.read_text() + "\n  \n")
    assert list(read_jsonl(path)) == [{"a": 1}, {"b": "é"}]


@pytest.mark.parametrize(("line", "problem"), [
    ('{"a": ', "not valid JSON"),
    ("[1, 2]", "not a JSON object (got '[1, 2]')"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, problem):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n' + line + "\n")
    with pytest.raises(ValueError) as info:
        list(read_jsonl(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3: {problem}") and "\n" not in message


def test_skip_bad_drops_torn_lines_only(tmp_path):
    path = tmp_path / "partial.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b"{"a": 3}\n{"a": 4}\n{"a": 5')
    assert [row["a"] for row in read_jsonl(path, skip_bad=True)] == [1, 4]
    assert [n for n, _ in numbered_jsonl(path, skip_bad=True)] == [1, 3]


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"a": "café"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.jsonl:1: byte 0xe9 at column 11 is not UTF-8"):
        list(read_jsonl(path))
