-- Run once by the postgres image on an empty volume: MLflow's tracking and registry database, beside the
-- series store's (POSTGRES_DB=seqcast). Both are migrated by their own programs on startup.
CREATE DATABASE mlflow;
