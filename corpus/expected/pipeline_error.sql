2025-11-28T03:00:00.223880Z session=2 client=127.0.0.1:40001 user=postgres db=postgres execute ok duration_ms=6.392 tag="SELECT 1" rows=1 sql: SELECT 1 AS first;
2025-11-28T03:00:00.223880Z session=2 client=127.0.0.1:40001 user=postgres db=postgres execute error duration_ms=6.392 sqlstate=22012 error="division by zero" sql: SELECT 1/0 AS fails;
2025-11-28T03:00:00.223880Z session=2 client=127.0.0.1:40001 user=postgres db=postgres execute not_executed sql: SELECT 3 AS skipped;
