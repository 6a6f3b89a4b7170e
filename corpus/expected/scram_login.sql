2025-11-28T03:00:00.220196Z session=1 client=127.0.0.1:40000 user=pgwire db=postgres query ok duration_ms=4.645 tag="SELECT 1" rows=1 sql: SELECT current_user, 'scram ok' AS result
