2025-11-28T03:00:00.193520Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=33.010 tag="CREATE TABLE" sql: CREATE TABLE t (id int PRIMARY KEY, name text, note text);
2025-11-28T03:00:00.226969Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=10.558 tag="COPY 4" rows=4 sql: COPY t FROM STDIN;
2025-11-28T03:00:00.237881Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=6.097 tag="COPY 2" rows=2 sql: COPY t (id, name) FROM STDIN WITH (FORMAT csv);
2025-11-28T03:00:00.244240Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=0.364 tag="COPY 6" rows=6 sql: COPY t TO STDOUT;
2025-11-28T03:00:00.244877Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=7.789 tag="COPY 2" rows=2 sql: COPY (SELECT id, name FROM t WHERE id > 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER);
2025-11-28T03:00:00.253044Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query error duration_ms=7.108 sqlstate=22P02 error="invalid input syntax for type integer: \"not-a-number\"" sql: COPY t (id, name) FROM STDIN;
2025-11-28T03:00:00.260469Z session=1 client=127.0.0.1:40000 user=postgres db=postgres query ok duration_ms=1.647 tag="SELECT 1" rows=1 sql: SELECT count(*) AS rows_in_t FROM t;
