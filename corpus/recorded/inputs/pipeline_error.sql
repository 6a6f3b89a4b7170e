\startpipeline
SELECT 1 AS first;
SELECT 1/0 AS fails;
SELECT 3 AS skipped;
\endpipeline
