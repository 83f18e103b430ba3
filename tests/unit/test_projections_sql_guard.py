"""What the read-only SQL check lets through: one reading statement, nothing else."""

import pytest

from projections import NotReadOnly, read_only_statement


@pytest.mark.parametrize(
    ("sql", "statement"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select count() from events;  ", "select count() from events"),
        ("WITH 1 AS a SELECT a;;", "WITH 1 AS a SELECT a"),
        ("SELECT 'a;b', \"x;\", `y;` -- c; d", "SELECT 'a;b', \"x;\", `y;` -- c; d"),
        ("SELECT 'it''s; fine' /* ; */", "SELECT 'it''s; fine' /* ; */"),
        ("SELECT 'back\\'slash;'", "SELECT 'back\\'slash;'"),
        ("SHOW TABLES", "SHOW TABLES"),
        ("DESCRIBE TABLE events", "DESCRIBE TABLE events"),
        ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
        ("SELECT 'INTO OUTFILE'", "SELECT 'INTO OUTFILE'"),
    ],
)
def test_reading_statements_pass(sql: str, statement: str) -> None:
    assert read_only_statement(sql) == statement


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "empty"),
        ("-- only a comment", "empty"),
        ("INSERT INTO events VALUES (1)", "not INSERT"),
        ("drop table events", "not DROP"),
        ("SYSTEM STOP MERGES", "not SYSTEM"),
        ("ALTER TABLE events DELETE WHERE 1", "not ALTER"),
        ("SELECT 1; DROP TABLE events", "one statement"),
        ("SELECT 1 /* x */ ; SELECT 2", "one statement"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    ],
)
def test_anything_else_is_refused(sql: str, reason: str) -> None:
    with pytest.raises(NotReadOnly, match=reason):
        read_only_statement(sql)
