-- Runs once, on the first start of an empty PostgreSQL volume (docker-entrypoint-initdb.d),
-- as POSTGRES_USER: a separate database for the Airflow metadata beside the decision store.
CREATE DATABASE airflow;
