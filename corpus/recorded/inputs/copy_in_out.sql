CREATE TABLE t (id int PRIMARY KEY, name text, note text);
-- The rows follow the command in this file (text format: tab separated, \N is NULL).
COPY t FROM STDIN;
1	alpha	first row
2	beta	\N
3	gamma	ünïcödé ☃
4	delta	tab\there
\.
COPY t (id, name) FROM STDIN WITH (FORMAT csv);
5,"epsilon, with comma"
6,"zeta ""quoted"""
\.
COPY t TO STDOUT;
COPY (SELECT id, name FROM t WHERE id > 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER);
-- Bad data: the server answers the copy with ErrorResponse 22P02 (invalid_text_representation).
COPY t (id, name) FROM STDIN;
7	eta
not-a-number	theta
\.
SELECT count(*) AS rows_in_t FROM t;
