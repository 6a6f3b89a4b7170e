-- Several statements, each sent by psql as its own Query message.
SELECT 1 AS one;
SELECT 'héllo wörld ☃ 日本語' AS unicode,
       E'line one\nline two' AS two_lines,
       length('☃') AS chars;
-- One Query message holding two statements (psql sends "\;"-joined statements together).
SELECT 1 AS first \; SELECT 2 AS second;
-- Fails with 42P01 (undefined_table); psql goes on with the next statement.
SELECT * FROM missing_table;
-- A multi-statement string whose middle statement fails: the rest of the string is skipped.
SELECT 3 AS before_error \; SELECT 1/0 \; SELECT 4 AS never_runs;
SELECT current_database() AS db,
       generate_series(1, 3) AS n;
