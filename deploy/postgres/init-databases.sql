-- One database per service. Run by the postgres image's entrypoint (docker-entrypoint-initdb.d)
-- only when the data volume is empty; each service's `migrate` command then creates its tables.
CREATE DATABASE lifecycle_ingest;
CREATE DATABASE lifecycle_stage_engine;
CREATE DATABASE lifecycle_messaging;
CREATE DATABASE lifecycle_loyalty;
